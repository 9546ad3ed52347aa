"""Text queries: "a red car" to the library images that look like it (CLIP libraries only).

A CLIP model embeds text and images in one space, so a text vector searches the
image index directly. The default CNN has no text encoder: a library built with
it refuses text queries with a line saying how to build a CLIP library instead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from lookalike.indexer.errors import BadQuery, LookalikeError
from lookalike.indexer.models.protocol import FeatureVector
from lookalike.indexer.models.registry import EXAMPLE_CLIP_MODEL

if TYPE_CHECKING:
    from lookalike.indexer.store.library import Library
    from lookalike.search.searcher import Searcher, SearchResult

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


def text_vectors(searcher: Searcher, texts: list[str]) -> FeatureVector:
    """The texts' L2-normalised vectors in the library's image space."""
    require_text_model(searcher.library)
    texts = [check_text(t) for t in texts]
    embedder = searcher.embedder
    embed_text = getattr(embedder, "embed_text", None)
    if embed_text is None:  # a model handed in by the caller, not the library's CLIP
        raise BadQuery(f"model {embedder.info.name} cannot embed text; text search needs CLIP")
    return np.asarray(embed_text(texts), dtype=np.float32)


def search_text(searcher: Searcher, text: str, k: int = 10) -> list[SearchResult]:
    """The k library images that best match ``text``, best first (score: cosine similarity).

    Raises:
        BadQuery: empty text, or a library built with a model without a text encoder.
    """
    return searcher.search_vector(text_vectors(searcher, [text])[0], k)


def search_texts(searcher: Searcher, texts: list[str], k: int = 10) -> list[list[SearchResult]]:
    """``search_text`` for several texts, embedding them in one batch."""
    if not texts:
        return []
    return searcher.search_vectors(text_vectors(searcher, texts), k)
