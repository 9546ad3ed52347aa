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

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from lookalike.indexer.errors import LookalikeError
from lookalike.indexer.models.efficientnet import imagenet_names
from lookalike.indexer.models.openclip import zero_shot_scores
from lookalike.indexer.models.protocol import has_text_encoder
from lookalike.indexer.models.registry import load_embedder_for
from lookalike.indexer.store.library import Library


class Suggestion(NamedTuple):
    label: str
    score: float  # the model's probability for this class (softmax)


class Suggestions(NamedTuple):
    source: str  # "imagenet" or "clip-zero-shot:<names>"
    suggestions: dict[int, list[Suggestion]]  # image id -> best first


def suggest(library: Library, image_ids: Sequence[int] | None = None, top: int = 3) -> Suggestions:
    """Suggested labels for ``image_ids`` (default: every image without a human label).

    Raises:
        LookalikeError: the library's model offers neither class scores nor text.
        MissingExtra: a CLIP library without the clip extra installed.
    """
    if image_ids is None:
        image_ids = library.catalog.unlabelled_ids()
    info = library.model_info()
    if info is not None and info.text_encoder:
        return zero_shot(library, image_ids, top)
    return imagenet(library, image_ids, top)


def imagenet(library: Library, image_ids: Sequence[int], top: int = 3) -> Suggestions:
    """The CNN's stored ImageNet guesses (top ``top``, at most 5) for each image."""
    ids = [int(i) for i in image_ids]
    stored = library.catalog.predictions_of(ids)
    if ids and not stored:
        raise LookalikeError(
            "no class scores stored for these images: the library's model has no "
            "classifier head (only the default CNN stores ImageNet guesses)"
        )
    return Suggestions(
        "imagenet",
        {i: [Suggestion(n, s) for n, s in stored[i][:top]] for i in ids if i in stored},
    )


def zero_shot_names(library: Library) -> tuple[list[str], str]:
    """(class names, source) for zero-shot suggestions: the user's label names, or the
    ImageNet names while there are fewer than two."""
    names = library.catalog.label_names()
    if len(names) < 2:
        return imagenet_names(), "clip-zero-shot:imagenet"
    return names, "clip-zero-shot:labels"


def zero_shot(library: Library, image_ids: Sequence[int], top: int = 3) -> Suggestions:
    """CLIP zero-shot over the user's label names (ImageNet names with fewer than two),
    with the library's own model (its spec and recorded weights file)."""
    info = library.model_info()
    if info is None:
        raise LookalikeError(f"library {library.root} has no model yet")
    names, source = zero_shot_names(library)
    embedder = load_embedder_for(info)
    if not has_text_encoder(embedder):
        raise LookalikeError(f"model {info.name} has no text encoder")
    ids, vectors = library.catalog.vectors([int(i) for i in image_ids])
    out: dict[int, list[Suggestion]] = {}
    for start in range(0, len(ids), 1024):
        probs = zero_shot_scores(embedder, vectors[start : start + 1024], names)
        best = np.argsort(-probs, axis=1)[:, :top]
        for row, image_id in enumerate(ids[start : start + 1024]):
            out[int(image_id)] = [Suggestion(names[j], float(probs[row, j])) for j in best[row]]
    return Suggestions(source, out)
