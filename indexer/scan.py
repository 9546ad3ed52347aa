"""Walking folders for image files, surviving symlink loops and dangling links."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import NamedTuple

from lookalike.indexer.images import is_image_name


class FileEntry(NamedTuple):
    path: str  # absolute, symlinks not resolved (the path as the user sees it)
    size: int
    mtime_ns: int


class Skipped(NamedTuple):
    path: str
    reason: str


def scan(roots: Iterable[str | Path]) -> tuple[list[FileEntry], list[Skipped]]:
    """Every image file under the roots (files given directly are taken as they are).

    Returns:
        The image files, sorted by path, and the entries that were skipped with why
        (dangling links, unreadable folders, a root that does not exist).
    """
    found: dict[str, FileEntry] = {}
    skipped: list[Skipped] = []
    seen_dirs: set[tuple[int, int]] = set()
    for root in roots:
        path = os.path.abspath(os.path.expanduser(str(root)))
        try:
            st = os.stat(path)
        except OSError as e:
            skipped.append(Skipped(path, skip_reason(e, path)))
            continue
        if os.path.isdir(path):
            for entry in walk(path, seen_dirs, skipped):
                found[entry.path] = entry
        else:
            found[path] = FileEntry(path, st.st_size, st.st_mtime_ns)
    return sorted(found.values()), skipped


def walk(top: str, seen: set[tuple[int, int]], skipped: list[Skipped]) -> Iterator[FileEntry]:
    stack = [top]
    while stack:
        folder = stack.pop()
        try:
            st = os.stat(folder)
        except OSError as e:
            skipped.append(Skipped(folder, skip_reason(e, folder)))
            continue
        key = (st.st_dev, st.st_ino)
        if key in seen:  # a symlink loop, or the same folder reached twice
            continue
        seen.add(key)
        try:
            entries = list(os.scandir(folder))
        except OSError as e:
            skipped.append(Skipped(folder, skip_reason(e, folder)))
            continue
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=True):
                    stack.append(entry.path)
                    continue
                if not is_image_name(entry.name):
                    continue
                est = entry.stat(follow_symlinks=True)
            except OSError as e:
                if is_image_name(entry.name) or entry.is_symlink():
                    skipped.append(Skipped(entry.path, skip_reason(e, entry.path)))
                continue
            if entry.is_file(follow_symlinks=True):
                yield FileEntry(entry.path, est.st_size, est.st_mtime_ns)


def skip_reason(error: OSError, path: str) -> str:
    if os.path.islink(path) and not os.path.exists(path):
        return "dangling symbolic link"
    if error.errno == 40:  # ELOOP
        return "symbolic link loop"
    return error.strerror or str(error)


def file_hash(data: bytes) -> str:
    """Content hash used to recognise moved and copied files."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()
