"""Shard files, resume rules and the page-by-page index build (no Ray, no model)."""

from __future__ import annotations

import numpy as np
import pytest

from lookalike.indexer.loading import FileJob, LoadedFile
from lookalike.indexer.models.protocol import ModelInfo
from lookalike.indexer.scan import FileEntry
from lookalike.indexer.store.catalog import NewImage
from lookalike.indexer.store.shards import (
    Shard,
    complete_shards,
    recoverable_rows,
    remove_orphans,
    write_shard,
)

DIM = 32
INFO = ModelInfo(name="fake", dim=DIM, preprocessing="none", weights_hash="0")


def _loaded(i: int, kind: str) -> LoadedFile:
    job = FileJob(FileEntry(f"/p/{i}.jpg", 100 + i, 1000 + i), None, None)
    if kind == "new":
        return LoadedFile(
            job, f"{i:032x}", np.zeros((2, 2, 3), np.uint8), 20 + i, 10 + i, None, None
        )
    if kind == "reuse":
        return LoadedFile(job, f"{i:032x}", None, 0, 0, 7, None)
    return LoadedFile(job, f"{i:032x}", None, 0, 0, None, "not a readable image")


def _new(item: LoadedFile, rng) -> NewImage:
    e = item.job.entry
    v = rng.standard_normal(DIM).astype(np.float32)
    top = [("cat", 0.5), ("dog", 0.25)]
    return NewImage(e.path, e.size, e.mtime_ns, item.digest, item.width, item.height, v, top)


def _shard(tmp_path, kinds=("new", "reuse", "new", "error")):
    rng = np.random.default_rng(0)
    loaded = [_loaded(i, k) for i, k in enumerate(kinds)]
    embedded = [(b, _new(b, rng)) for b in loaded if b.pixels is not None]
    path = write_shard(tmp_path, INFO.key(), DIM, loaded, embedded, {"embed": 1.5})
    return path, loaded, embedded


def test_a_shard_reads_back_as_the_commit_takes_it(tmp_path):
    manifest, loaded, embedded = _shard(tmp_path)
    shard = Shard.read(manifest)
    assert (shard.model, shard.embedded, shard.stats) == (INFO.key(), 2, {"embed": 1.5})
    writes = shard.writes()
    assert [kind for kind, _ in writes] == ["new", "reuse", "new", "error"]
    (item, new), reuse, error = writes[0][1], writes[1][1], writes[3][1]
    assert new.path == "/p/0.jpg" and (new.width, new.height) == (20, 10)
    np.testing.assert_array_equal(new.vector, embedded[0][1].vector)
    np.testing.assert_array_equal(writes[2][1][1].vector, embedded[1][1].vector)
    assert new.top == [("cat", 0.5), ("dog", 0.25)]
    assert item.job.entry == loaded[0].job.entry
    assert (reuse.reuse_id, reuse.digest) == (7, loaded[1].digest)
    assert error.error == "not a readable image"
    shard.remove()
    assert list(tmp_path.iterdir()) == []


def test_orphans_go_and_complete_shards_stay(tmp_path):
    manifest, _, _ = _shard(tmp_path)
    (tmp_path / "shard-dead.npy").write_bytes(b"half")
    (tmp_path / ".shard-x.json.12.tmp").write_bytes(b"{")
    assert remove_orphans(tmp_path) == 2
    assert complete_shards(tmp_path) == [manifest]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [manifest.name, manifest.with_suffix(".npy").name]
    )


def test_a_leftover_row_counts_only_while_its_file_is_unchanged(tmp_path):
    manifest, loaded, _ = _shard(tmp_path, kinds=("new", "new", "new", "reuse"))
    shard = Shard.read(manifest)
    e = [b.job.entry for b in loaded]
    current = {
        e[0].path: e[0],  # unchanged since the shard: recovered
        e[1].path: FileEntry(e[1].path, e[1].size, e[1].mtime_ns + 1),  # edited since
        e[2].path: e[2],  # the catalog already has exactly this: merged before the kill
        e[3].path: e[3],  # reused content: decided again, never recovered
    }
    known = {e[2].path: (5, e[2].size, e[2].mtime_ns, loaded[2].digest)}
    rows = recoverable_rows(shard, current, known)
    assert [r["path"] for r in rows] == [e[0].path]
    known[e[0].path] = (9, 1, 1, "older content")
    (row,) = recoverable_rows(shard, current, known)
    assert (row["old_id"], row["old_hash"]) == (9, "older content")


def test_known_content_lookup():
    from lookalike.indexer.ray.stages import KnownContent, known_content

    by_hash = {f"{i * 7919:032x}": [i + 1, 99] for i in range(50)}
    lookup = KnownContent(*known_content(by_hash))
    assert all(lookup.get(h) == [ids[0]] for h, ids in by_hash.items())
    assert lookup.get(f"{3:032x}") is None
    assert KnownContent(*known_content({})).get(f"{3:032x}") is None


def test_actor_plan_follows_the_cluster():
    from lookalike.indexer.errors import LookalikeError
    from lookalike.indexer.ray.engine import RayOptions, _actor_plan, _decode_tasks

    assert _actor_plan({"CPU": 16.0, "GPU": 4.0}, RayOptions()) == (4, 1, 1.0)
    assert _actor_plan({"CPU": 16.0, "GPU": 4.0}, RayOptions(gpus=False))[:2] == (16, 0)
    actors, gpus, cpus = _actor_plan({"CPU": 2.0}, RayOptions(actor_cpus=2))
    assert (actors, gpus) == (1, 0) and 1.0 < cpus < 2.0
    with pytest.raises(LookalikeError):
        _actor_plan({"CPU": 2.0}, RayOptions(gpus=True))
    # Decoding gets the CPUs the actors leave: an eighth by default, more with fewer actors.
    cluster = {"CPU": 256.0}
    assert _decode_tasks(cluster, *_actor_plan(cluster, RayOptions())[::2]) == 32
    assert _decode_tasks(cluster, *_actor_plan(cluster, RayOptions(actors=128))[::2]) == 144
    assert _decode_tasks({"CPU": 2.0}, 2, 0.875) == 2
