"""The label-next queue as the page shows it (``GET /api/labels/next``).

The queue (:mod:`lookalike.classifier.label_queue`) gives each image its last tag
run's tag (a calibrated confidence) and then the labels of its nearest labelled
images (their cosine similarity): two scales in one list. Here every suggestion
gets the one measure all of them can have, the cosine similarity of the image to
the nearest image of that label (QueueItem.near), and they are ordered by it, best
first; the tagger's answer keeps its confidence beside its own suggestion. Each image also
says in a few words why the queue picked it, read from the same figures (the
queue's value is its density times its need: how unsure the tagger is there, and
how far the image lies from every label).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lookalike.classifier.label_queue import SUGGESTIONS, QueueItem
from lookalike.indexer.store.catalog import Catalog, TagRow

# Below this similarity to the nearest labelled image, an image is "far from every
# label". Measured with the default CNN on 16 dev classes x 10 images, half the classes
# labelled: the images of an unlabelled class had their nearest label at 0.39
# (median; 90% below 0.47), those of a labelled class at 0.61 (10% below 0.50).
FAR_SIMILARITY = 0.45
# Two labels within this similarity of each other are both as near: the image lies
# "between" them (the same measurement: 5% of labelled-class images were this close).
BETWEEN_MARGIN = 0.05
# A tag less likely right than this leaves the tagger "unsure".
UNSURE = 0.5


def page_items(catalog: Catalog, items: Sequence[QueueItem]) -> list[dict[str, Any]]:
    """The queue's items as the API answers them (see module docstring)."""
    tags = catalog.tag_rows_of([item.id for item in items])
    return [_item(item, tags.get(item.id)) for item in items]


def _item(item: QueueItem, tag: TagRow | None) -> dict[str, Any]:
    tagged = tag["label"] if tag else None
    # The labels of the nearest labelled images, nearest first (QueueItem.near), as many
    # as the queue suggests, the tagger's label among them: where it is not among the
    # first, last, with its similarity (None when none of the 20 nearest labelled images
    # has it: farther than every one listed).
    near: dict[str, float | None] = dict(item.near)
    ranked = list(near.items())[:SUGGESTIONS]
    if tagged is not None and tagged not in dict(ranked):
        ranked = [*ranked[: SUGGESTIONS - 1], (tagged, near.get(tagged))]
    return {
        "id": item.id,
        "path": item.path,
        "suggestions": [
            {
                "label": label,
                "similarity": None if sim is None else round(sim, 4),
                "tag_confidence": round(tag["confidence"], 4) if tag and label == tagged else None,
            }
            for label, sim in ranked
        ],
        "tag": {"label": tagged, "confidence": round(tag["confidence"], 4)} if tag else None,
        "reason": reason(ranked, tag),
    }


def reason(ranked: Sequence[tuple[str, float | None]], tag: TagRow | None) -> str:
    """Why the queue picked an image, in a few words (module docstring)."""
    known = [(label, sim) for label, sim in ranked if sim is not None]
    if not known:
        return "no labelled image looks like it yet"
    (first, best), rest = known[0], known[1:]
    if best < FAR_SIMILARITY:
        return "far from every label: maybe a new class"
    if rest and best - rest[0][1] < BETWEEN_MARGIN:
        return f"between {first} and {rest[0][0]}"
    if tag is None:
        return f"not tagged yet; nearest label: {first}"
    if tag["label"] is None:
        return f"the tagger left it unknown; nearest label: {first}"
    if tag["confidence"] < UNSURE:
        return f"the tagger is unsure of {tag['label']} ({round(tag['confidence'] * 100)}%)"
    return "many unlabelled images look like it: its label teaches the tagger about them all"
