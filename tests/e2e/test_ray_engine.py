"""`lookalike index --engine ray` on a local Ray instance, against the single-process path.

One Ray instance (2 CPUs) is started for the module; the CLI runs as a subprocess
and joins it with --ray-address, as it would join a cluster.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.support.cli import run_cli
from tests.support.data import dev_images

pytestmark = [
    pytest.mark.ray,  # `make test-fast` leaves them out
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="needs lookalike[ray]"),
]

SHARD = "8"
NO_RAY_SCRIPT = """
import sys
from lookalike.cli import main
try:
    main(sys.argv[1:], standalone_mode=False)
finally:
    assert "ray" not in sys.modules, "the single-process path imported ray"
"""


@pytest.fixture(scope="module")
def ray_address():
    import ray  # here, not at collection: other test modules never pay for importing it

    ctx = ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield ctx.address_info["gcs_address"]
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def photos(tmp_path_factory, data_dir) -> Path:
    """40 dev images in 5 class folders, one at the top level, an unreadable file, a
    dangling link and a symlink loop back to the top."""
    root = tmp_path_factory.mktemp("ray") / "photos"
    sources = dev_images(classes=5, per_class=8)
    for p in sources:
        (root / p.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copy2(p, root / p.parent.name / p.name)
    shutil.copy2(dev_images(classes=6, per_class=1)[-1], root / "top.jpg")
    (root / "broken.jpg").write_text("not a picture")
    (root / "gone.jpg").symlink_to(root / "nowhere.jpg")
    (root / sources[0].parent.name / "loop").symlink_to(root)
    return root


@pytest.fixture(scope="module")
def reference(tmp_path_factory, photos) -> tuple[Path, dict]:
    """The single-process library of the same folder (ray is never imported there)."""
    lib = tmp_path_factory.mktemp("ray") / "single"
    args = ["index", str(photos), "--library", str(lib), "--json"]
    proc = subprocess.run(
        [sys.executable, "-c", NO_RAY_SCRIPT, *args], capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr
    return lib, json.loads(proc.stdout)


def _index_ray(photos, lib, address, env=None, check=True):
    args = ["index", str(photos), "--library", str(lib), "--engine", "ray"]
    args += ["--ray-address", address, "--shard-size", SHARD, "--json"]
    return run_cli(*args, env=env, check=check)


def _catalog(lib: Path) -> dict[str, tuple[int, np.ndarray, str]]:
    """path -> (id, vector, top class guess) of every image in a library."""
    from lookalike.indexer.store.library import Library

    with Library.open(lib) as library:
        known = library.catalog.known_files()
        ids, vectors = library.catalog.vectors()
        by_id = dict(zip(ids.tolist(), vectors, strict=True))
        return {
            path: (row[0], by_id[row[0]], library.catalog.predictions(row[0])[0][0])
            for path, row in known.items()
        }


def _errors(lib: Path) -> list:
    from lookalike.indexer.store.library import Library

    with Library.open(lib) as library:
        return [tuple(e) for e in library.catalog.errors()]


def _shards_left(lib: Path) -> list[Path]:
    return sorted((lib / "shards").glob("shard-*"))


def test_ray_index_matches_single_process(ray_address, photos, reference, tmp_path):
    reference, single = reference
    lib = tmp_path / "ray"
    summary = json.loads(_index_ray(photos, lib, ray_address).stdout)
    assert summary["engine"] == "ray" and summary["devices"] == ["cpu"]
    assert (summary["added"], summary["embedded"], summary["shards"]) == (41, 41, 6)
    skipped = sorted((s["path"], s["reason"]) for s in summary["skipped"])
    assert skipped == sorted((s["path"], s["reason"]) for s in single["skipped"])
    loop = next(photos.glob("*/loop"))  # the link back to the top (see photos)
    assert [p for p, _ in skipped] == sorted(
        [
            str(loop),
            str(photos / "broken.jpg"),
            str(photos / "gone.jpg"),
        ]
    )
    assert "walked already" in dict(skipped)[str(loop)]  # the link back to the top
    assert _errors(lib) == _errors(reference)
    assert _shards_left(lib) == []
    assert not (lib / "index-progress.json").exists()  # the run removed its progress file

    ours, theirs = _catalog(lib), _catalog(reference)
    assert sorted(ours) == sorted(theirs)
    assert {p: v[0] for p, v in ours.items()} == {p: v[0] for p, v in theirs.items()}
    cosines = [float(ours[p][1] @ theirs[p][1]) for p in ours]
    assert min(cosines) > 1 - 1e-5
    assert {p: v[2] for p, v in ours.items()} == {p: v[2] for p, v in theirs.items()}

    queries = [str(p) for p in dev_images(classes=7, per_class=2)[-4:]]
    results = []
    for library in (lib, reference):
        out = run_cli("search", *queries, "--library", str(library), "-k", "5", "--json")
        results.append([[r["id"] for r in q["results"]] for q in json.loads(out.stdout)])
    assert results[0] == results[1]


def test_killed_job_resumes_from_its_shards(ray_address, photos, reference, tmp_path):
    reference, _ = reference
    folder = tmp_path / "photos"
    shutil.copytree(photos, folder, symlinks=True)
    (folder / "gone.jpg").unlink()  # the links point into the original folder
    for link in [d / "loop" for d in folder.iterdir()]:
        if link.is_symlink():
            link.unlink()
    lib = tmp_path / "ray"
    # The driver SIGKILLs itself when the third shard arrives: two are merged by then.
    env = {"LOOKALIKE_TEST_KILL_AFTER_SHARDS": "3"}
    killed = _index_ray(folder, lib, ray_address, env=env, check=False)
    assert killed.returncode == -9, killed.stderr
    merged = _catalog(lib)
    files = sorted(folder.rglob("*.jpg"))
    assert len(merged) == sum(1 for p in files[: 2 * int(SHARD)] if p.name != "broken.jpg")
    assert any(p.suffix == ".json" for p in _shards_left(lib)), "no shard was left to resume"

    # Between the runs: a merged file moves, another is touched (same bytes, new mtime).
    moved_from = sorted(merged)[0]
    moved_to = str(folder / "moved.jpg")
    os.rename(moved_from, moved_to)
    touched = sorted(merged)[1]
    os.utime(touched, ns=(1_000_000_000, 1_000_000_000))

    summary = json.loads(_index_ray(folder, lib, ray_address).stdout)
    assert summary["recovered"] >= int(SHARD) - 1, summary
    assert summary["embedded"] == 41 - len(merged) - summary["recovered"], summary
    assert summary["added"] == 41 - len(merged), summary
    assert (summary["moved"], summary["removed"]) == (1, 0), summary
    assert _shards_left(lib) == []

    final, theirs = _catalog(lib), _catalog(reference)
    assert final[moved_to][0] == merged[moved_from][0]  # a moved file keeps its id and data
    assert final[touched][0] == merged[touched][0]
    rename = {moved_to: str(photos / Path(moved_from).relative_to(folder))}
    for path, (_id, vector, top) in final.items():
        ref = theirs[rename.get(path, str(photos / Path(path).relative_to(folder)))]
        assert float(vector @ ref[1]) > 1 - 1e-5
        assert top == ref[2]


def test_ray_runs_keep_copy_descriptors_too(ray_address, photos, tmp_path):
    lib = tmp_path / "ray-copies"
    args = ["index", str(photos), "--library", str(lib), "--engine", "ray"]
    args += ["--ray-address", ray_address, "--shard-size", SHARD, "--copy-detection", "--json"]
    summary = json.loads(run_cli(*args).stdout)
    assert summary["added"] == 41
    assert summary["copy_descriptors"]["computed"] == 41
    assert summary["copy_descriptors"]["total"] == 41


def test_ray_runs_leave_removed_files_out_and_keep_an_unplugged_disk(ray_address, tmp_path):
    """The Ray engine plans as the single-process one does: a file removed from the
    library stays out; a folder indexed by itself, gone when its parent is indexed, is
    offline, not removed."""
    from lookalike.indexer.store import image_marks
    from lookalike.indexer.store.library import Library

    media = tmp_path / "media"
    for folder, sources in (("disk", dev_images(2, 2)), ("home", dev_images(3, 1)[-1:])):
        (media / folder).mkdir(parents=True)
        for p in sources:
            shutil.copy2(p, media / folder / f"{p.parent.name}-{p.name}")
    lib = tmp_path / "lib"
    _index_ray(media / "disk", lib, ray_address)
    _index_ray(media, lib, ray_address)
    gone = sorted((media / "disk").iterdir())[0]
    with Library.open(lib, readonly=False) as library, library.catalog.transaction() as conn:
        (image_id,) = library.catalog.ids_of_paths([str(gone)]).values()
        image_marks.record_removed(conn, str(gone))
        library.catalog.remove_images(conn, [image_id])
    assert json.loads(_index_ray(media, lib, ray_address).stdout)["added"] == 0
    (media / "disk").rename(tmp_path / "unplugged")
    doc = json.loads(_index_ray(media, lib, ray_address).stdout)
    assert doc["removed"] == 0 and doc["offline"][0]["images"] == 3
