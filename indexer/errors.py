"""Domain errors of the library packages.

They carry their data; only the CLI and web edges turn them into messages,
exit codes and HTTP statuses.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
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


class PathsNotFound(LookalikeError):
    """Paths to index that do not exist and were never indexed (a mistyped folder)."""

    def __init__(self, paths: list[str]) -> None:
        self.paths = paths
        super().__init__(
            f"no such file or folder: {', '.join(paths)} (nothing was indexed or changed)"
        )


class PathsInLibrary(LookalikeError):
    """Paths to index that are the library's own folder or inside it: ``paths`` maps
    each to whether it is the folder itself."""

    def __init__(self, paths: dict[str, bool], library: str) -> None:
        self.paths = list(paths)
        where = [
            f"{p} is the library's own folder"
            if itself
            else f"{p} is inside the library's own folder {library}"
            for p, itself in paths.items()
        ]
        super().__init__(
            f"{'; '.join(where)}, which holds its catalog and index, not photos to index: "
            "name a folder of photos outside it (nothing was indexed or changed)"
        )


class NotInLibrary(LookalikeError):
    """Paths that name no indexed image (``lookalike remove``)."""

    def __init__(self, paths: list[str]) -> None:
        self.paths = paths
        super().__init__(f"no indexed images at {', '.join(paths)} (nothing was removed)")


class LibraryBusy(LookalikeError):
    """Another process is writing to the library."""


class LibraryReadOnly(LookalikeError):
    """A write to a library that this process can only read (read-only mount, no permission)."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        super().__init__(
            f"library {self.path} is read-only here: this needs write access (info, search, "
            "labels list, check and serve work on a read-only library)"
        )


class CatalogUnavailable(LookalikeError):
    """A catalog that SQLite cannot open or read: damaged, not a catalog, or a full disk."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"cannot use the catalog {self.path}: {reason}")


class DamagedIndex(LookalikeError):
    """A library's index file that is not the one written (missing, truncated, changed)."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"index file {self.path} {problem}")


class BadQuery(LookalikeError):
    """A query that cannot be answered as given (bad box, bad threshold, ...)."""


class MissingExtra(LookalikeError):
    """A feature needs an optional extra (``pip install "lookalike[EXTRA]"``) that is
    not installed."""

    def __init__(self, extra: str, feature: str, module: str | None) -> None:
        self.extra = extra
        self.feature = feature
        self.module = module
        super().__init__(
            f"{feature} needs the {extra} extra ({module or 'a module'} is not installed): "
            f'pip install "lookalike[{extra}]"'
        )


@contextmanager
def needs_extra(extra: str, feature: str) -> Iterator[None]:
    """Imports of an optional extra go in this block: a module missing there raises
    MissingExtra (one line naming the pip command) instead of a traceback.

    Any third-party module counts (open_clip without torch, or without one of its own
    dependencies: installing the extra mends both); a missing first-party module is a
    bug and propagates as it is.
    """
    try:
        yield
    except ModuleNotFoundError as e:
        if (e.name or "").partition(".")[0] == "lookalike":
            raise
        raise MissingExtra(extra, feature, e.name) from e
