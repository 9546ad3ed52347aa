"""Checking a library against its catalog, and repairing what can be rebuilt
(``lookalike check [--repair]``).

The catalog is the truth; every other file is derived from it. The check reads:

- the catalog: SQLite's ``PRAGMA integrity_check`` (a damaged catalog cannot be
  repaired here: restore a backup, or try ``sqlite3 catalog.sqlite .recover``);
- the index file: size, checksum and count against what was written
  (indexer/store/index_file.py), then its ids against the catalog's vectors (the ids
  changed since it was written may differ);
- vectors.f16 (IVF kind only): every row against the catalog's vector, as float16;
- other files: older index generations and temporary files left by an interrupted
  write (orphans, removed by a repair), and names a library does not use (listed,
  never removed).

A repair rebuilds the index and vectors.f16 from the catalog
(:meth:`Library.rebuild_index`) and removes the orphans; the check then runs again,
and what it still finds is what remains.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

import numpy as np

from lookalike.indexer.errors import DamagedIndex
from lookalike.indexer.progress import FILE_NAME as PROGRESS_NAME
from lookalike.indexer.store.exact_vectors import DTYPE, ExactVectors
from lookalike.indexer.store.exact_vectors import FILE_NAME as EXACT_NAME
from lookalike.indexer.store.library import BUILD_CHUNK, CATALOG_NAME, LOCK_NAME, Library
from lookalike.indexer.store.map_file import FILE_NAME as MAP_NAME
from lookalike.indexer.store.vector_index import FLAT

CATALOG, INDEX, VECTORS, ORPHANS, UNKNOWN = "catalog", "index", "vectors", "orphans", "unknown"
# Names a library directory holds besides its index generations (see library.py).
KNOWN = {
    CATALOG_NAME,
    f"{CATALOG_NAME}-wal",
    f"{CATALOG_NAME}-shm",
    f"{CATALOG_NAME}-journal",
    LOCK_NAME,
    EXACT_NAME,
    PROGRESS_NAME,
    MAP_NAME,
    "thumbnails",
    "shards",
}
TEMPORARY = re.compile(
    r"^\.(index-\d+\.faiss|vectors\.f16|index-progress\.json|map\.npz)\.\d+\.tmp$"
)
GENERATION = re.compile(r"^index-(\d+)\.faiss$")


@dataclass
class Finding:
    """One problem the check found."""

    part: str  # catalog, index, vectors, orphans, unknown
    problem: str
    repairable: bool  # a repair can mend it (unknown files and the catalog: no)
    repaired: bool = False


@dataclass
class CheckReport:
    """What ``lookalike check`` found and did."""

    library: str
    findings: list[Finding] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)  # what a repair did

    @property
    def ok(self) -> bool:
        """No problem left (unknown files are only reported)."""
        return all(f.repaired or f.part == UNKNOWN for f in self.findings)

    def as_dict(self) -> dict:
        return {
            "library": self.library,
            "ok": self.ok,
            "findings": [asdict(f) for f in self.findings],
            "actions": self.actions,
        }


def check_library(lib: Library, repair: bool = False) -> CheckReport:
    """Check ``lib`` (see the module docstring); with ``repair``, mend what can be
    mended (the caller holds the writer lock) and check again."""
    report = CheckReport(str(lib.root), _findings(lib))
    if not repair or report.ok:
        return report
    catalog_ok = not any(f.part == CATALOG for f in report.findings)
    if catalog_ok and any(f.part in (INDEX, VECTORS) for f in report.findings):
        index = lib.rebuild_index(current_kind=lib.catalog.get_meta("index_kind"))
        report.actions.append(
            f"rebuilt {lib.index_path().name} from the catalog ({index.ntotal:,} vectors, "
            f"{index.kind})" + ("" if index.kind == FLAT else f" and {EXACT_NAME}")
        )
    for path in _orphans(lib):  # a rebuild removed its own; this catches the rest
        path.unlink(missing_ok=True)
        report.actions.append(f"removed {path.name}")
    left = _findings(lib)
    for finding in report.findings:
        finding.repaired = not any(
            f.part == finding.part and f.problem == finding.problem for f in left
        )
    report.findings += [f for f in left if f not in report.findings]
    return report


def _findings(lib: Library) -> list[Finding]:
    found = [Finding(CATALOG, p, False) for p in lib.catalog.integrity_problems()]
    if found:  # a damaged catalog: the rest cannot be judged against it
        return found
    index_problem = _index_problem(lib)
    if index_problem:
        found.append(Finding(INDEX, index_problem, True))
    vectors_problem = _vectors_problem(lib)
    if vectors_problem:
        found.append(Finding(VECTORS, vectors_problem, True))
    orphans = _orphans(lib)
    if orphans:
        names = ", ".join(sorted(p.name for p in orphans))
        found.append(Finding(ORPHANS, f"{len(orphans)} left-over files: {names}", True))
    unknown = sorted(p.name for p in lib.root.iterdir() if _unknown(lib, p.name))
    if unknown:
        found.append(Finding(UNKNOWN, f"not library files: {', '.join(unknown)}", False))
    return found


def _index_problem(lib: Library) -> str | None:
    if lib.index_generation() == 0:
        return None
    pending = lib.catalog.pending_index()
    try:
        index = lib.read_index(stale=pending)
    except DamagedIndex as e:
        return str(e)
    extra = np.setdiff1d(index.ids(), lib.catalog.vector_ids())
    missing = np.setdiff1d(lib.catalog.vector_ids(), index.ids())
    unexplained = np.setdiff1d(np.union1d(extra, missing), np.array(pending, dtype=np.int64))
    if len(unexplained):
        return (
            f"index file {lib.index_path().name} disagrees with the catalog on "
            f"{len(unexplained):,} ids ({len(extra):,} it has that the catalog has not, "
            f"{len(missing):,} it lacks)"
        )
    return None


def _vectors_problem(lib: Library) -> str | None:
    """vectors.f16 against the catalog (IVF kind); rows of changed ids may differ."""
    info = lib.model_info()
    recorded = lib.catalog.get_meta("exact_vectors")
    path = lib.root / EXACT_NAME
    if not recorded or info is None:
        return None
    if not path.exists():
        return f"{EXACT_NAME} is missing"
    stale = set(lib.catalog.pending_index())
    exact = ExactVectors(path, info.dim)
    try:
        ids = lib.catalog.vector_ids()
        wrong = 0
        for start in range(0, len(ids), BUILD_CHUNK):
            chunk_ids, vectors = lib.catalog.vectors(ids[start : start + BUILD_CHUNK], info.dim)
            same = (exact.rows(chunk_ids) == vectors.astype(DTYPE)).all(axis=1)
            pairs = zip(chunk_ids.tolist(), same.tolist(), strict=True)
            wrong += sum(1 for i, ok in pairs if not ok and i not in stale)
    finally:
        exact.close()
    return f"{EXACT_NAME}: {wrong:,} rows differ from the catalog" if wrong else None


def _orphans(lib: Library) -> list:
    """Left-over files; while another process writes, its temporary files are its own."""
    current = lib.index_path().name if lib.index_generation() else None
    writing = lib.writer_active()
    out = []
    for path in lib.root.iterdir():
        name = path.name
        if TEMPORARY.match(name) and not writing:
            out.append(path)
        elif GENERATION.match(name) and name != current and not writing:
            out.append(path)
        elif name == EXACT_NAME and not writing and not lib.catalog.get_meta("exact_vectors"):
            out.append(path)  # a flat library keeps none
        elif name == PROGRESS_NAME and not writing:
            out.append(path)  # the progress of a run that was killed
    return out


def _unknown(lib: Library, name: str) -> bool:
    return not (name in KNOWN or TEMPORARY.match(name) or GENERATION.match(name))
