"""FAISS, imported on first use: it takes a while to import, and most commands
(``lookalike --help`` first) never touch an index."""

from __future__ import annotations

from types import ModuleType


def load_faiss() -> ModuleType:
    """The ``faiss`` module (imported here, once, the first time it is asked for)."""
    import faiss  # heavy (a compiled library): only when an index is built or read

    return faiss
