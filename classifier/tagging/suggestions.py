"""Zero-configuration tag suggestions, kept apart from the kNN tags.

- A library built with the default CNN: the model's own ImageNet-1k guesses,
  stored at indexing time in the catalog's predictions table (top 5 per image).
- A library built with a CLIP model (open_clip): zero-shot scores of the image
  against the user's label names (or, with fewer than two, the ImageNet names),
  through the text tower ("a photo of a {label}.").

Suggestions are never written as tags or labels; a person accepts them with
``labels set``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from lookalike.indexer.errors import LookalikeError


class Suggestion(NamedTuple):
    label: str
    score: float  # the model's probability for this class (softmax)


class Suggestions(NamedTuple):
    source: str  # "imagenet" or "clip-zero-shot:<names>"
    suggestions: dict[int, list[Suggestion]]  # image id -> best first


def suggest(library, image_ids: Sequence[int] | None = None, top: int = 3) -> Suggestions:
    """Suggested labels for ``image_ids`` (default: every image without a human label).

    Raises:
        LookalikeError: the library's model offers neither class scores nor text.
    """
    cat = library.catalog
    if image_ids is None:
        image_ids = [
            r[0]
            for r in cat.conn.execute(
                "SELECT id FROM images WHERE id NOT IN (SELECT image_id FROM labels) ORDER BY id"
            )
        ]
    info = library.model_info()
    if info is not None and info.text_encoder:
        return zero_shot(library, image_ids, top)
    return imagenet(cat, image_ids, top)


def imagenet(catalog, image_ids: Sequence[int], top: int = 3) -> Suggestions:
    """The CNN's stored ImageNet guesses (top ``top``, at most 5) for each image."""
    out: dict[int, list[Suggestion]] = {}
    ids = [int(i) for i in image_ids]
    for start in range(0, len(ids), 900):
        chunk = ids[start : start + 900]
        marks = ",".join("?" * len(chunk))
        rows = catalog.conn.execute(
            f"SELECT image_id, top FROM predictions WHERE image_id IN ({marks})", chunk
        )
        for image_id, text in rows:
            out[image_id] = [Suggestion(n, float(s)) for n, s in json.loads(text)[:top]]
    if ids and not out:
        raise LookalikeError(
            "no class scores stored for these images: the library's model has no "
            "classifier head (only the default CNN stores ImageNet guesses)"
        )
    return Suggestions("imagenet", {i: out[i] for i in ids if i in out})


def zero_shot(library, image_ids: Sequence[int], top: int = 3) -> Suggestions:
    """CLIP zero-shot over the user's label names (ImageNet names with fewer than two)."""
    try:
        from lookalike.indexer.models.openclip import zero_shot_scores
    except ImportError as e:
        raise LookalikeError(
            f"zero-shot suggestions need the open_clip backend "
            f"(lookalike.indexer.models.openclip): {e}"
        ) from e
    from lookalike.indexer.models.protocol import has_text_encoder
    from lookalike.indexer.models.registry import load_embedder

    names = [
        r[0] for r in library.catalog.conn.execute("SELECT DISTINCT label FROM labels ORDER BY 1")
    ]
    source = "clip-zero-shot:labels"
    if len(names) < 2:
        from lookalike.indexer.models.efficientnet import imagenet_names

        names, source = imagenet_names(), "clip-zero-shot:imagenet"
    embedder = load_embedder(library.model_info().name)
    if not has_text_encoder(embedder):
        raise LookalikeError(f"model {library.model_info().name} has no text encoder")
    ids, vectors = library.catalog.vectors([int(i) for i in image_ids])
    out: dict[int, list[Suggestion]] = {}
    for start in range(0, len(ids), 1024):
        probs = zero_shot_scores(embedder, vectors[start : start + 1024], names)
        best = np.argsort(-probs, axis=1)[:, :top]
        for row, image_id in enumerate(ids[start : start + 1024]):
            out[int(image_id)] = [Suggestion(names[j], float(probs[row, j])) for j in best[row]]
    return Suggestions(source, out)
