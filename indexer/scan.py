"""Walking folders for image files, surviving symlink loops and dangling links.

What cannot be read (a root that does not exist, a folder without permission, a
dangling link) is reported ``unread``: the indexer keeps the images it knows under it
as offline instead of removing them. Names that are not UTF-8 are skipped with one
line each, shown escaped; the library's own directory is never walked.
"""

from __future__ import annotations

import errno
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
    path: str  # as printable text: a name that is not UTF-8 shows its bytes escaped
    reason: str
    # A root, folder or link that could not be read (missing, unreadable, dangling): the
    # indexed images under it are offline (kept), not deleted.
    unread: bool = False


BAD_NAME = "the name is not valid UTF-8 (rename it to index it)"


def printable(path: str) -> str:
    """``path`` as text that prints and stores: undecodable bytes escaped (``\\xff``)."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def is_utf8(name: str) -> bool:
    """False for a name holding bytes that are not UTF-8 (os.fsdecode's surrogates)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def dir_keys(folders: Iterable[str | Path]) -> set[tuple[int, int]]:
    """(device, inode) of the folders that exist among ``folders``."""
    keys = set()
    for folder in folders:
        try:
            st = os.stat(folder)
        except OSError:
            continue
        keys.add((st.st_dev, st.st_ino))
    return keys


def scan(
    roots: Iterable[str | Path], exclude: Iterable[str | Path] = ()
) -> tuple[list[FileEntry], list[Skipped]]:
    """Every image file under the roots (files given directly are taken as they are).

    Folders in ``exclude`` (the library's own directory) are never walked.

    Returns:
        The image files, sorted by path, and the entries that were skipped with why
        (names that are not UTF-8; and with ``unread`` set: roots that do not exist,
        unreadable folders, dangling links, whose indexed images are offline, not deleted).
    """
    found: dict[str, FileEntry] = {}
    skipped: list[Skipped] = []
    excluded = dir_keys(exclude)
    seen_dirs: set[tuple[int, int]] = set(excluded)
    for root in roots:
        path = os.path.abspath(os.path.expanduser(str(root)))
        if not is_utf8(path):
            skipped.append(Skipped(printable(path), BAD_NAME))
            continue
        try:
            st = os.stat(path)
        except OSError as e:
            skipped.append(Skipped(path, skip_reason(e, path), unread=True))
            continue
        if os.path.isdir(path):
            for entry in walk(path, seen_dirs, skipped, excluded):
                found[entry.path] = entry
        else:
            found[path] = FileEntry(path, st.st_size, st.st_mtime_ns)
    return sorted(found.values()), skipped


LINKED_AGAIN = "a link to a folder walked already (a loop, or the same folder twice)"


def walk(
    top: str,
    seen: set[tuple[int, int]],
    skipped: list[Skipped],
    excluded: Iterable[tuple[int, int]] = (),
) -> Iterator[FileEntry]:
    """The image files under ``top``; a folder already in ``seen`` is not walked again
    (a link to it says so, unless it is ``excluded``: the library's own)."""
    quiet = set(excluded)
    stack = [top]
    while stack:
        folder = stack.pop()
        try:
            st = os.stat(folder)
        except OSError as e:
            skipped.append(Skipped(folder, skip_reason(e, folder), unread=True))
            continue
        key = (st.st_dev, st.st_ino)
        if key in seen:  # a symlink loop, the same folder reached twice, or excluded
            if key not in quiet and os.path.islink(folder):
                skipped.append(Skipped(printable(folder), LINKED_AGAIN))
            continue
        seen.add(key)
        try:
            entries = list(os.scandir(folder))
        except OSError as e:
            skipped.append(Skipped(folder, skip_reason(e, folder), unread=True))
            continue
        for entry in entries:
            found = _entry(entry, stack, skipped)
            if found is not None:
                yield found


def _entry(entry: os.DirEntry, stack: list[str], skipped: list[Skipped]) -> FileEntry | None:
    """One folder entry: an image file, or None (a sub-folder is pushed on ``stack``)."""
    try:
        if entry.is_dir(follow_symlinks=True):
            if is_utf8(entry.name):
                stack.append(entry.path)
            else:
                skipped.append(Skipped(printable(entry.path), BAD_NAME))
            return None
        if not is_image_name(entry.name):
            if entry.is_symlink() and not os.path.exists(entry.path):  # a folder's link?
                reason = _broken_link(entry.path)
                skipped.append(Skipped(printable(entry.path), reason, unread=True))
            return None
        if not is_utf8(entry.name):
            skipped.append(Skipped(printable(entry.path), BAD_NAME))
            return None
        est = entry.stat(follow_symlinks=True)
    except OSError as e:
        if is_image_name(entry.name) or entry.is_symlink():
            reason = skip_reason(e, entry.path)
            skipped.append(Skipped(printable(entry.path), reason, unread=True))
        return None
    if entry.is_file(follow_symlinks=True):
        return FileEntry(entry.path, est.st_size, est.st_mtime_ns)
    return None


def skip_reason(error: OSError, path: str) -> str:
    if error.errno == errno.ELOOP:
        return "symbolic link loop"
    if os.path.islink(path) and not os.path.exists(path):
        return _broken_link(path)
    return error.strerror or str(error)


def _broken_link(path: str) -> str:
    """Why a symbolic link leads nowhere: a loop of links, or a target that is gone."""
    try:
        os.stat(path)
    except OSError as e:
        if e.errno == errno.ELOOP:
            return "symbolic link loop"
    return "dangling symbolic link"


def file_hash(data: bytes) -> str:
    """Content hash used to recognise moved and copied files."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()
