"""Coverage of the labels on the unlabelled library: is a class under-tagged?

Cross-validation on the labels (lookalike.classifier.tagging.validation) says how well
a head tells the labelled images apart; it cannot say that a class of 800 images got
its tag for 20 of them. This counts, for every human label: the images a person gave
it, the images the last tag run gave it, and the images left without a label or a tag
("unknown", or added since the last run) whose nearest class prototype is that label's
(the mean of its labelled vectors, cosine, in the tagger's vector space). A label with
many unknown images nearest to it, against few tagged, is under-tagged: label a few of
them (``lookalike labels next`` picks them) and tag again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from lookalike.classifier.tagging.tagger import last_run, prepare
from lookalike.indexer.numerics import l2_normalize
from lookalike.indexer.store.library import Library


class LabelCoverage(NamedTuple):
    label: str
    human: int  # images with this human label
    tagged: int  # images the last tag run tagged with it
    unknown_nearest: int  # images with no label or tag whose nearest prototype is this one

    @property
    def unknown_share(self) -> float:
        """Share of unknown images among those that carry or lie nearest to the label."""
        total = self.human + self.tagged + self.unknown_nearest
        return self.unknown_nearest / total if total else 0.0


@dataclass(frozen=True)
class Coverage:
    """Per label (the largest share of unknown images nearest to it first)."""

    labels: list[LabelCoverage]
    images: int  # images in the library
    unknown: int  # images without a human label or a tag
    tagged_at: float | None  # when the last tag run finished (None: never tagged)

    def to_json(self) -> dict[str, Any]:
        return {
            "images": self.images,
            "unknown": self.unknown,
            "tagged_at": self.tagged_at,
            "labels": [c._asdict() for c in self.labels],
        }


def coverage_of(
    vectors: np.ndarray,
    labels: dict[int, str],
    tags: dict[int, str],
    tagged_at: float | None = None,
) -> Coverage:
    """Coverage from every image's vector (row = image), the human ``labels`` and the
    predicted ``tags`` (row -> label; a row in neither is unknown)."""
    names = sorted(set(labels.values()))
    unknown = np.setdiff1d(np.arange(len(vectors)), list(labels) + list(tags))
    nearest = np.zeros(len(names), dtype=np.int64)
    if names and len(unknown):
        x = prepare(vectors)
        index = {name: c for c, name in enumerate(names)}
        rows = np.array(list(labels), dtype=np.int64)
        classes = np.array([index[labels[r]] for r in rows])
        sums = np.zeros((len(names), x.shape[1]))
        np.add.at(sums, classes, x[rows].astype(np.float64))
        best = nearest_prototype(x[unknown], l2_normalize(sums))
        nearest = np.bincount(best, minlength=len(names))
    human = _count(labels.values())
    tagged = _count(tags.values())
    per_label = [
        LabelCoverage(name, human.get(name, 0), tagged.get(name, 0), int(nearest[c]))
        for c, name in enumerate(names)
    ]
    per_label.sort(key=lambda c: (-c.unknown_share, -c.unknown_nearest, c.label))
    return Coverage(per_label, len(vectors), int(len(unknown)), tagged_at)


def library_coverage(library: Library) -> Coverage:
    """:func:`coverage_of` a library (any open library; nothing written)."""
    cat = library.catalog
    ids, vectors = cat.vectors()
    row_of = {int(i): r for r, i in enumerate(ids)}
    labels = {row_of[i]: lab for i, lab in cat.labels().items() if i in row_of}
    tags = {
        row_of[i]: lab
        for i, lab in cat.tag_labels().items()
        if i in row_of and row_of[i] not in labels
    }
    run = last_run(library)
    return coverage_of(vectors, labels, tags, run.at if run else None)


def _count(values) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in values:
        out[v] = out.get(v, 0) + 1
    return out


def nearest_prototype(x: np.ndarray, prototypes: np.ndarray, chunk: int = 8192) -> np.ndarray:
    """(n,) the class of the nearest prototype of every row of ``x``."""
    p = prototypes.astype(np.float32).T
    best = np.empty(len(x), dtype=np.int64)
    for start in range(0, len(x), chunk):
        rows = np.asarray(x[start : start + chunk], np.float32)
        best[start : start + chunk] = (rows @ p).argmax(1)
    return best
