"""The library map's file: ``map.npz`` in the library directory.

It holds a ``lookalike.classifier.clustering.projection.Projection`` and the catalog's
content version it was computed for (``key``). Like every file but the catalog it can
be rebuilt from the catalog, so a missing, stale or unreadable file is no error: the
map is computed again. Written aside and renamed, so a reader never sees half a file;
a library the server cannot write to keeps its map in memory only (``save`` says so).
"""

from __future__ import annotations

import logging
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

FILE_NAME = "map.npz"
FIELDS = ("ids", "xy", "mean", "components", "landmark_ids", "landmark_xy", "landmark_vectors")

log = logging.getLogger(__name__)


def load(root: Path) -> tuple[str, dict[str, np.ndarray]] | None:
    """(key, arrays) of the library's map file, or None when there is none to use."""
    path = root / FILE_NAME
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in FIELDS}
            key = str(data["key"])
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as e:
        log.warning("ignoring the unreadable map file %s (%s); computing the map again", path, e)
        return None
    return key, arrays


def save(root: Path, key: str, arrays: dict[str, np.ndarray]) -> bool:
    """Write the map file; False (and a log line) when the library is not writable."""
    path = root / FILE_NAME
    tmp = path.with_name(f".{FILE_NAME}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            payload: dict[str, Any] = {name: arrays[name] for name in FIELDS}
            np.savez(f, key=np.array(key), **payload)
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        log.warning("cannot keep the library map in %s (%s): it stays in memory", root, e)
        return False
    return True
