"""Updating a library from folders: the one use case behind ``lookalike index`` and the
web app's index jobs.

``update_library`` opens the library once (or creates it, once its model is known),
chooses the models, takes the writer lock once for the whole update, runs the engine
(this process: lookalike.indexer.batch; or Ray: lookalike.indexer.ray.engine), then
brings the copy-detection descriptors in line (lookalike.indexer.store.copy_vectors),
and returns one ``UpdateSummary``.

Models are chosen as a person expects: a new library gets ``--model`` (the default
CNN without one); an existing one keeps the model that built it (another ``--model``
is a ModelMismatch), with the ``--weights`` file it was built from unless another is
named. Copy detection stays as the library has it unless the choice turns it on or
off. Both models load before anything is written, so a model that cannot load
changes nothing. A caller that holds loaded models already (the web server) hands
them in instead.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lookalike.indexer.batch import BatchIndexer, IndexOptions, IndexSummary
from lookalike.indexer.errors import (
    LibraryNotFound,
    ModelMismatch,
    ModelUnavailable,
    NotInLibrary,
    PathsInLibrary,
    PathsNotFound,
)
from lookalike.indexer.models.copy_model import CopyModel, load_copy_model
from lookalike.indexer.models.protocol import Embedder
from lookalike.indexer.models.registry import load_embedder
from lookalike.indexer.ray.engine import RayIndexer, RayOptions, RaySummary
from lookalike.indexer.scan import printable
from lookalike.indexer.store import copy_vectors
from lookalike.indexer.store.copy_vectors import CopySummary
from lookalike.indexer.store.library import (
    CATALOG_NAME,
    LOCK_NAME,
    Library,
    default_library_dir,
)

Progress = Callable[[int, int], None]  # (done, total) after each commit


@dataclass(frozen=True)
class ModelChoice:
    """Which models an update runs with (``lookalike index``'s model options)."""

    model: str | None = None  # a new library's model spec; an existing one's must match
    weights: str | None = None  # an open_clip checkpoint; default: the library's own
    # Where the model embeds here: cpu, cuda or auto. With the Ray engine the driver's
    # model only describes the library (it loads on the CPU); RayOptions.device says
    # where the actors embed.
    device: str = "cpu"
    copy_detection: bool | None = None  # on, off (the descriptors go), None: as it is
    copy_model: str | None = None  # sscd_distilled, sscd or an ONNX file; implies on


@dataclass
class UpdateSummary:
    """What an update did: the indexing run's summary, and the copy pass's if it ran."""

    index: IndexSummary  # a RaySummary with the Ray engine
    devices: list[str]  # where the model embedded
    copies: CopySummary | None = None  # None: no copy-descriptor pass

    def as_dict(self) -> dict[str, Any]:
        """The JSON document of ``lookalike index --json`` (and of a web job's summary)."""
        doc = {**self.index.as_dict(), "devices": self.devices}
        if self.copies is not None:
            doc["copy_descriptors"] = {
                "computed": self.copies.computed,
                "total": self.copies.total,
                "skipped": [{"path": p, "reason": r} for p, r in self.copies.skipped],
            }
        return doc


def update_library(
    root: str | Path | None,
    paths: Sequence[str | Path],
    choice: ModelChoice | None = None,
    *,
    embedder: Embedder | None = None,
    copies: CopyModel | None = None,
    copies_optional: bool = False,
    options: IndexOptions | None = None,
    ray: RayOptions | None = None,
    on_progress: Progress | None = None,
    on_copy_progress: Progress | None = None,
) -> UpdateSummary:
    """Index the images under ``paths`` into the library at ``root`` (see module docstring).

    Args:
        root: the library directory (None: $LOOKALIKE_LIBRARY or the default); created
            when it holds no library yet.
        paths: folders or files; only new or changed files are embedded, files gone
            from the given folders are removed.
        choice: the models by name (default: the library's own, or the default CNN).
        embedder: a loaded model to use instead of loading ``choice.model``.
        copies: a loaded copy model, used when it is the one the library records.
        copies_optional: in a library with copy detection on, skip the copy pass when
            ``copies`` is not its copy model, instead of loading that (a server that
            could not load it).
        options: the indexer's options (batch size, loader threads, ...).
        ray: run on Ray with these options; None: in this process.
        on_progress: called with (done, total) files after each commit.
        on_copy_progress: the same for the copy-descriptor pass.

    Raises:
        ModelMismatch: ``choice.model`` or ``embedder`` is not the library's model.
        ModelUnavailable: a model cannot be loaded (nothing was written).
        LibraryBusy: another process is writing to the library.
        PathsNotFound: a path does not exist and holds no indexed images (nothing changed).
    """
    choice = choice or ModelChoice()
    options = options or IndexOptions()
    lib = _open_existing(root)
    new: NewLibrary | None = None
    try:
        check_paths(lib, paths)
        check_outside(Path(root or default_library_dir()).expanduser(), paths)
        embedder = embedder or choose_embedder(lib, choice, on_ray=ray is not None)
        copy_model = choose_copy_model(lib, choice, copies, skip_recorded=copies_optional)
        if lib is None:
            new = NewLibrary.before(root)
            lib = Library.create(root, embedder.info)
        else:
            lib.use_model(embedder.info)
        with lib.locked():
            summary = _index(lib, embedder, paths, options, ray, on_progress)
            summary.copies = _copy_pass(lib, choice, copy_model, options, on_copy_progress)
        return summary
    except BaseException:
        if new is not None:  # a failed first run leaves no empty library behind
            if lib is None:
                new.forget()  # Library.create itself failed (a full disk)
            else:
                new.forget_if_empty(lib)
        raise
    finally:
        if lib is not None:
            lib.close()


def check_paths(library: Library | None, paths: Sequence[str | Path]) -> None:
    """PathsNotFound for paths that do not exist and were never indexed; a missing path
    with images in the library is offline (an unplugged disk), its images are kept."""
    missing = []
    for p in paths:
        full = os.path.abspath(os.path.expanduser(str(p)))
        if os.path.lexists(full):
            continue
        if library is None or not library.catalog.ids_under(full, itself=True):
            missing.append(printable(str(p)))
    if missing:
        raise PathsNotFound(missing)


def check_outside(root: str | Path, paths: Sequence[str | Path]) -> None:
    """PathsInLibrary for paths that are the library's own folder or lie inside it (its
    thumbnails are no photos of the library); a library inside an indexed folder is
    fine: the walk leaves it out."""
    home = os.path.realpath(root)
    inside: dict[str, bool] = {}
    for p in paths:
        full = os.path.realpath(os.path.expanduser(str(p)))
        if full == home or full.startswith(home.rstrip(os.sep) + os.sep):
            inside[printable(str(p))] = full == home
    if inside:
        raise PathsInLibrary(inside, home)


@dataclass
class Removal:
    """What ``remove_from_library`` did."""

    removed: int  # images taken out of the library (their files are not touched)
    labels_kept: int  # of them with a human label, kept by content for a later index run


def remove_from_library(root: str | Path | None, paths: Sequence[str | Path]) -> Removal:
    """Take the images at ``paths`` (files or folders, present or offline) out of the
    library, on purpose; files stay on disk, human labels are kept by content hash.

    Raises:
        NotInLibrary: a path names no indexed image (nothing was removed).
    """
    with Library.open(root, readonly=False) as lib, lib.locked():
        ids: list[int] = []
        unknown = []
        for p in paths:
            under = lib.catalog.ids_under(os.path.abspath(os.path.expanduser(str(p))), itself=True)
            if under:
                ids.extend(under)
            else:
                unknown.append(printable(str(p)))
        if unknown:
            raise NotInLibrary(unknown)
        ids = sorted(set(ids))
        labelled = len(lib.catalog.labels_of(ids))
        with lib.catalog.transaction() as conn:
            lib.catalog.remove_images(conn, ids)
        lib.sync_index()
        return Removal(len(ids), labelled)


@dataclass(frozen=True)
class NewLibrary:
    """A library this update creates: what was there before, to undo it on failure."""

    root: Path
    made_dir: bool  # the directory did not exist

    @classmethod
    def before(cls, root: str | Path | None) -> NewLibrary:
        path = Path(root or default_library_dir()).expanduser().absolute()
        return cls(path, not path.exists())

    def forget_if_empty(self, lib: Library) -> None:
        """Remove the library's files (and its directory, if this run made it) when the
        failed run committed no image."""
        try:
            if lib.catalog.count() or lib.catalog.errors():
                return
        except sqlite3.Error:
            pass  # an unreadable new catalog holds nothing worth keeping
        lib.close()
        self.forget()

    def forget(self) -> None:
        """Remove the files a new library starts with (and its directory, if made)."""
        names = (CATALOG_NAME, f"{CATALOG_NAME}-wal", f"{CATALOG_NAME}-shm", LOCK_NAME)
        for path in [*(self.root / n for n in names), *self.root.glob("index-*.faiss")]:
            path.unlink(missing_ok=True)
        if self.made_dir:
            with contextlib.suppress(OSError):  # not empty: something else is in it
                self.root.rmdir()


def choose_embedder(library: Library | None, choice: ModelChoice, on_ray: bool = False) -> Embedder:
    """The model the library was built with, or ``choice.model`` for a new library.

    An open_clip library built from a --weights file reloads that file unless the
    choice names another (whose hash must then match).
    """
    stored = library.model_info() if library is not None else None
    if stored is not None and choice.model and choice.model != stored.name:
        assert library is not None
        raise ModelMismatch(library.root, stored.name, choice.model)
    spec = choice.model or (stored.name if stored else None)
    weights = choice.weights
    if weights is None and stored is not None:
        weights = stored.extra.get("weights")
    device = "cpu" if on_ray else choice.device
    return load_embedder(spec, device=device, **({"weights": weights} if weights else {}))


def choose_copy_model(
    library: Library | None,
    choice: ModelChoice,
    at_hand: CopyModel | None = None,
    skip_recorded: bool = False,
) -> CopyModel | None:
    """The copy model this update keeps descriptors with, or None: copy detection off.

    As the library has it (no choice made), that is the recorded copy model: ``at_hand``
    when it is that one, else loaded (or, with ``skip_recorded``, None).
    """
    if choice.copy_detection is False:
        return None
    stored = library.copy_model_info() if library is not None else None
    if choice.copy_model:
        return load_copy_model(choice.copy_model)
    if choice.copy_detection:
        return load_copy_model(stored.name if stored else None)
    if stored is None:
        return None
    if at_hand is not None and at_hand.info == stored:
        return at_hand
    if skip_recorded:
        return None
    try:
        return load_copy_model(stored)
    except ModelUnavailable as e:
        raise ModelUnavailable(
            f"{e}. This library keeps copy descriptors; to index without them, "
            f"turn copy detection off: --no-copy-detection"
        ) from None


def _open_existing(root: str | Path | None) -> Library | None:
    try:
        return Library.open(root, readonly=False)
    except LibraryNotFound:
        return None


def _index(
    lib: Library,
    embedder: Embedder,
    paths: Sequence[str | Path],
    options: IndexOptions,
    ray: RayOptions | None,
    on_progress: Progress | None,
) -> UpdateSummary:
    roots = [str(p) for p in paths]
    if ray is None:
        summary = BatchIndexer(lib, embedder, options, on_progress).run(roots)
        return UpdateSummary(summary, [embedder.device])
    ray_summary: RaySummary = RayIndexer(lib, embedder, options, ray, on_progress).run(roots)
    return UpdateSummary(ray_summary, sorted(ray_summary.devices))


def _copy_pass(
    lib: Library,
    choice: ModelChoice,
    model: CopyModel | None,
    options: IndexOptions,
    on_progress: Progress | None,
) -> CopySummary | None:
    """Turn copy detection on or off as chosen, and compute the missing descriptors."""
    if choice.copy_detection is False:
        copy_vectors.disable(lib)
        return None
    if model is None:
        return None
    copy_vectors.enable(lib, model)
    return copy_vectors.build(
        lib,
        model,
        workers=options.workers,
        max_pixels=options.max_pixels,
        on_progress=on_progress,
    )
