"""Domain errors of the library packages.

They carry their data; only the CLI and web edges turn them into messages,
exit codes and HTTP statuses.
"""

from __future__ import annotations

from pathlib import Path


class LookalikeError(Exception):
    """Base class of every error Lookalike reports to a person."""


class UnreadableImage(LookalikeError):
    """A file that cannot be turned into an image (corrupt, not an image, too large)."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class ModelMismatch(LookalikeError):
    """A library opened with a model other than the one that built it."""

    def __init__(self, library: str | Path, stored: str, requested: str, differs: str = "") -> None:
        self.library = str(library)
        self.stored = stored
        self.requested = requested
        self.differs = differs
        if differs:  # same model name, other weights or settings
            super().__init__(
                f"library {self.library} was built with {stored} {differs}; use the weights "
                f"it was built with or a new --library directory"
            )
        else:
            super().__init__(
                f"library {self.library} was built with model {stored!r}, not {requested!r}; "
                f"use --model {stored} or a new --library directory"
            )


class ModelUnavailable(LookalikeError):
    """Weights for a model cannot be found offline."""


class LibraryNotFound(LookalikeError):
    """No library at the given directory."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        super().__init__(
            f"no Lookalike library at {self.path}; index some images first "
            f"(lookalike index FOLDER --library {self.path}) or pass another --library"
        )


class LibraryBusy(LookalikeError):
    """Another process is writing to the library."""


class BadQuery(LookalikeError):
    """A query that cannot be answered as given (bad box, bad threshold, ...)."""
