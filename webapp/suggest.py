"""Zero-configuration tag suggestions for the image page (``classifier.tagging.suggestions``).

With the default CNN they are its stored ImageNet guesses. With a CLIP library they
are zero-shot scores against the user's label names (ImageNet names with fewer than
two labels), computed with the model the server already holds; the names' text
vectors are cached until the set of labels changes, so a page view costs one
matrix product, not a run of the text tower.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import numpy as np

from lookalike.classifier.tagging.suggestions import imagenet, zero_shot_names
from lookalike.indexer.errors import LookalikeError
from lookalike.indexer.models.openclip import label_vectors
from lookalike.indexer.numerics import softmax

log = logging.getLogger(__name__)


class SuggestionSource:
    """Suggestions for single images of one library (see module docstring)."""

    def __init__(self, service) -> None:
        self.service = service  # the LibraryService: its read-only library and its model
        self._lock = threading.Lock()
        self._text: tuple[tuple[str, ...], np.ndarray] | None = None

    def for_image(self, image_id: int, top: int = 3) -> list[dict[str, Any]]:
        info = self.service.library.model_info()
        try:
            if info is not None and info.text_encoder:
                return self._zero_shot(image_id, top)
            return self._imagenet(image_id, top)
        except LookalikeError as e:  # suggestions decorate the page; they never break it
            log.warning("no suggestions for image %s: %s", image_id, e)
            return []

    def _imagenet(self, image_id: int, top: int) -> list[dict[str, Any]]:
        library = self.service.library
        if not library.catalog.predictions(image_id):
            return []
        found = imagenet(library, [image_id], top)
        return [
            {"label": s.label, "score": round(s.score, 4), "source": found.source}
            for s in found.suggestions.get(image_id, [])
        ]

    def _zero_shot(self, image_id: int, top: int) -> list[dict[str, Any]]:
        vector = self.service.library.catalog.vector(image_id)
        if vector is None:
            return []
        names, text, source = self._label_vectors()
        embedder = self.service.searcher.embedder
        probs = softmax((embedder.logit_scale * (text @ vector))[None])[0]
        best = np.argsort(-probs)[:top]
        return [
            {"label": names[j], "score": round(float(probs[j]), 4), "source": source} for j in best
        ]

    def _label_vectors(self) -> tuple[tuple[str, ...], np.ndarray, str]:
        found, source = zero_shot_names(self.service.library)
        names = tuple(found)
        with self._lock:
            if self._text is None or self._text[0] != names:
                self._text = (names, label_vectors(self.service.searcher.embedder, names))
            return names, self._text[1], source
