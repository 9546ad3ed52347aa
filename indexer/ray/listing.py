"""Listing files on Ray: one task per top-level folder (see lookalike.indexer.ray.engine).

``list_files`` runs on the driver and returns what lookalike.indexer.scan.scan would;
``list_folder`` is the task, which runs in a Ray worker and imports no Ray.
"""

from __future__ import annotations

import os

from lookalike.indexer.scan import FileEntry, Skipped, dir_keys, scan, skip_reason, walk


def list_files(
    ray, roots: list[str], exclude: list[str] | None = None
) -> tuple[list[FileEntry], list[Skipped]]:
    """lookalike.indexer.scan.scan's answer, with each top-level folder walked by a Ray task.

    Folders already walked (symlink loops, a folder reached twice) are skipped as in
    scan; a symbolic link from one top-level folder into another lists those files
    under their own folder's path rather than under the link's. Folders in ``exclude``
    (the library's own) are never walked.
    """
    found: dict[str, FileEntry] = {}
    skipped: list[Skipped] = []
    seen: set[tuple[int, int]] = dir_keys(exclude or [])
    folders: list[str] = []
    for root in roots:
        path = os.path.abspath(os.path.expanduser(str(root)))
        if not os.path.isdir(path):
            entries, missed = scan([path], exclude=exclude or [])
            found.update((e.path, e) for e in entries)
            skipped.extend(missed)
            continue
        key = dir_key(path)
        if key is None or key in seen:
            continue
        subdirs = []
        try:
            with os.scandir(path) as it:
                for entry in it:
                    sub_key = dir_key(entry.path) if entry.is_dir(follow_symlinks=True) else None
                    if sub_key is not None and sub_key not in seen:
                        seen.add(sub_key)
                        subdirs.append(entry.path)
        except OSError as e:
            skipped.append(Skipped(path, skip_reason(e, path), unread=True))
            continue
        # The root's own files: walk it with its sub-folders marked as seen.
        found.update((e.path, e) for e in walk(path, set(seen), skipped))
        seen.add(key)
        folders.extend(subdirs)
    if folders:
        ds = ray.data.from_items([{"folder": f} for f in folders], override_num_blocks=len(folders))
        tasks = max(2, int(ray.cluster_resources().get("CPU", 1)))
        ds = ds.flat_map(
            list_folder,
            fn_kwargs={"seen": sorted(seen)},
            num_cpus=0.25,  # listing waits on the file system more than it computes
            compute=ray.data.TaskPoolStrategy(size=tasks),
        )
        for row in ds.iter_rows():
            if row["reason"]:
                skipped.append(Skipped(row["path"], row["reason"], row["unread"]))
            else:
                found[row["path"]] = FileEntry(row["path"], row["size"], row["mtime_ns"])
    return sorted(found.values()), skipped


def dir_key(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def list_folder(row: dict, seen: list) -> list[dict]:
    folder = row["folder"]
    own = dir_key(folder)
    marks = {tuple(k) for k in seen} - {own}
    skipped: list[Skipped] = []
    out = [
        {"path": e.path, "size": e.size, "mtime_ns": e.mtime_ns, "reason": "", "unread": False}
        for e in walk(folder, marks, skipped)
    ]
    out.extend(
        {"path": s.path, "size": 0, "mtime_ns": 0, "reason": s.reason, "unread": s.unread}
        for s in skipped
    )
    return out
