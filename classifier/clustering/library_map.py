"""The library map: a ``Projection`` of every image, kept up to date, and its colours.

``library_map`` reads the map file (``lookalike.indexer.store.map_file``) and uses it
while the catalog's content version is the one it was made for; after an index run it
extends the map (the places of known images kept) or, when the library changed too
much, computes it afresh (see ``projection``). ``colours`` gives each image a category:
its human label, its tag (the human label where there is one, else the tagger's label,
else unknown) or its open cluster proposal.
"""

from __future__ import annotations

from collections import Counter
from typing import Literal, NamedTuple

import numpy as np
import numpy.typing as npt

from lookalike.classifier.clustering import projection
from lookalike.classifier.clustering.projection import Projection
from lookalike.indexer.store import map_file
from lookalike.indexer.store.clusters import ClusterStore
from lookalike.indexer.store.library import Library

ColourBy = Literal["label", "tag", "cluster"]
COLOUR_BY: tuple[ColourBy, ...] = ("label", "tag", "cluster")
NONE_NAME = {"label": "no human label", "tag": "unknown", "cluster": "in no cluster"}


class Colours(NamedTuple):
    """Category 0 is "none" (``none_name``); category i >= 1 is ``legend[i - 1]``."""

    by: ColourBy
    none_name: str
    legend: list[tuple[str, int]]  # (name, images), most images first
    none_count: int
    codes: npt.NDArray[np.uint16]  # (n,) aligned with the projection's ids


def map_key(library: Library) -> str:
    """What the map depends on: the model and the set of vectors."""
    info = library.model_info()
    model = info.key() if info else "none"
    return f"{model}|{library.catalog.content_version()}"


def library_map(library: Library, previous: Projection | None = None) -> Projection:
    """The library's map, from its file where it is current (see the module docstring)."""
    key = map_key(library)
    stored = map_file.load(library.root)
    if stored is not None and stored[0] == key:
        return Projection(**stored[1])
    if previous is None and stored is not None:
        previous = Projection(**stored[1])
    ids, vectors = library.catalog.vectors()
    if len(ids) == 0:
        made = _empty(vectors.shape[1] if vectors.ndim == 2 else 0)
    elif previous is None or projection.needs_fresh(previous, ids):
        made = projection.project(ids, vectors)
    else:
        made = projection.extend(previous, ids, vectors)
    map_file.save(library.root, key, made.__dict__)
    return made


def colours(library: Library, ids: npt.NDArray[np.int64], by: ColourBy) -> Colours:
    """Each image's category for ``by`` (see ``Colours``)."""
    names = _names(library, by)
    per_image = [names.get(int(i)) for i in ids]
    counts = Counter(n for n in per_image if n is not None)
    legend = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    code_of = {name: code for code, (name, _) in enumerate(legend, start=1)}
    codes = np.array([code_of.get(n, 0) if n is not None else 0 for n in per_image], np.uint16)
    none_count = len(per_image) - sum(counts.values())
    return Colours(by, NONE_NAME[by], legend, none_count, codes)


MAX_CATEGORIES = 65_535  # the payload's uint16 codes


def _names(library: Library, by: ColourBy) -> dict[int, str]:
    catalog = library.catalog
    if by == "label":
        return catalog.labels()
    if by == "tag":
        tagged = catalog.tag_labels()
        return {**tagged, **catalog.labels()}
    store = ClusterStore(catalog)
    members = store.member_sets("proposed")
    out: dict[int, str] = {}
    for row in store.proposed()[: MAX_CATEGORIES - 1]:
        name = row.label or row.suggested_name or "new"
        for image_id in members.get(row.id, ()):
            out[image_id] = f"#{row.id} {name}"
    return out


def _empty(dim: int) -> Projection:
    none = np.zeros(0, np.int64)
    return Projection(
        none,
        np.zeros((0, 2), np.float32),
        np.zeros(dim, np.float32),
        np.zeros((dim, 0), np.float32),
        none,
        np.zeros((0, 2), np.float32),
        np.zeros((0, 0), np.float32),
    )
