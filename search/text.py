"""Text queries: "a red car" to the library images that look like it (CLIP libraries only).

A CLIP model embeds text and images in one space, so a text vector searches the
image index directly (``Searcher.search_text``, with the checks and vectors here).
The default CNN has no text encoder: a library built with it refuses text queries
with a line saying how to build a CLIP library instead.
"""

from __future__ import annotations

import numpy as np

from lookalike.indexer.errors import BadQuery, LookalikeError
from lookalike.indexer.models.protocol import Embedder, FeatureVector, has_text_encoder
from lookalike.indexer.models.registry import EXAMPLE_CLIP_MODEL
from lookalike.indexer.store.library import Library

MAX_TEXT_CHARS = 1000  # CLIP reads 77 tokens at most; longer text is a mistake, not a query


def require_text_model(library: Library) -> None:
    """Refuse, before loading any model, a library whose model cannot read text.

    Raises:
        BadQuery: the library was built with a model without a text encoder.
        LookalikeError: the library has no model yet.
    """
    info = library.model_info()
    if info is None:
        raise LookalikeError(f"library {library.root} is empty; index some images first")
    if not info.text_encoder:
        raise BadQuery(
            f"text search needs a CLIP library, and {library.root} was built with "
            f"{info.name}, which has no text encoder; build a CLIP library with "
            f"lookalike index FOLDER --library NEW_DIR --model {EXAMPLE_CLIP_MODEL} "
            f"(weights from the Hugging Face cache, or add --weights FILE)"
        )


def check_text(text: str) -> str:
    """The query text, stripped; BadQuery when empty or absurdly long."""
    if not isinstance(text, str):
        raise BadQuery(f"a text query must be a string, not {type(text).__name__}")
    text = text.strip()
    if not text:
        raise BadQuery("the text query is empty; say what to look for, e.g. --text 'a red car'")
    if len(text) > MAX_TEXT_CHARS:
        raise BadQuery(f"the text query has {len(text)} characters; keep it under {MAX_TEXT_CHARS}")
    return text


def text_vectors(embedder: Embedder, texts: list[str]) -> FeatureVector:
    """The texts' L2-normalised vectors in the embedder's image space (checked texts:
    see check_text; the library checked first: see require_text_model)."""
    if not has_text_encoder(embedder):  # a model handed in by the caller, not a CLIP
        raise BadQuery(f"model {embedder.info.name} cannot embed text; text search needs CLIP")
    return np.asarray(embedder.embed_text(texts), dtype=np.float32)
