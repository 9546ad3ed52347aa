"""A file's identity as indexed (device, inode, size, mtime), and opening a file only
while it still has it.

The indexer records the identity of the very file it read (``fstat`` of the open file).
What serves an indexed file later (the web app's ``/file``, thumbnails) opens the path,
checks the open file against the catalog's row and reads only from that descriptor: a
file replaced since indexing (by a symlink to ``/etc/passwd`` of the same size, by a
FIFO, by another file renamed over it) is refused, with no window between the check and
the read. Rows indexed before identities were recorded (or by the Ray engine, which does
not carry them) are checked by size and mtime only.
"""

from __future__ import annotations

import os
import stat
from typing import BinaryIO, NamedTuple

_WRAP = 2**64  # inode numbers are unsigned 64-bit; SQLite integers are signed
_SIGNED_MAX = 2**63 - 1


class Identity(NamedTuple):
    """(device, inode) of a file, as SQLite stores them (wrapped into signed 64 bits)."""

    dev: int
    ino: int


class IndexedFile(NamedTuple):
    """What the catalog holds of a file: its size and mtime, and its identity if known."""

    size: int
    mtime_ns: int
    identity: Identity | None


def _signed(value: int) -> int:
    return value - _WRAP if value > _SIGNED_MAX else value


def identity_of(st: os.stat_result) -> Identity:
    return Identity(_signed(st.st_dev), _signed(st.st_ino))


def open_as_indexed(path: str, indexed: IndexedFile) -> BinaryIO | None:
    """``path`` opened for reading when it is still the regular file indexed; else None.

    Opened without blocking (a FIFO swapped in would otherwise hang the open), then
    checked with ``fstat``: a regular file, the indexed size and mtime, and the indexed
    device and inode where they were recorded.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if (
            not stat.S_ISREG(st.st_mode)
            or st.st_size != indexed.size
            or st.st_mtime_ns != indexed.mtime_ns
            or (indexed.identity is not None and identity_of(st) != indexed.identity)
        ):
            os.close(fd)
            return None
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except OSError:
        os.close(fd)
        return None
