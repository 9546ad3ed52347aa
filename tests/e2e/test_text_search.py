"""`lookalike index --model openclip:... --weights FILE` and `lookalike search --text`.

The CLIP model is a randomly initialised open_clip architecture saved as a local
checkpoint: the plumbing is real (CLI, open_clip, SQLite, FAISS), the weights are
not, and nothing touches the network or the Hugging Face cache.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from lookalike.indexer.models.registry import load_embedder
from lookalike.indexer.store.library import Library
from tests.support.cli import run_cli
from tests.support.clip import ARCH, DIM, save_random_checkpoint
from tests.support.data import dev_images

MODEL = f"openclip:{ARCH}"


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """An empty Hugging Face cache, so a real one on this machine cannot leak in."""
    hf = tmp_path_factory.mktemp("hf")
    return {"HF_HOME": str(hf), "HF_HUB_CACHE": str(hf / "hub"), "HF_HUB_OFFLINE": ""}


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return save_random_checkpoint(tmp_path_factory.mktemp("clip") / "tiny.pt")


@pytest.fixture(scope="module")
def clip(weights):
    """The same model in this process, to check what the CLI computed."""
    return load_embedder(MODEL, weights=weights)


@pytest.fixture(scope="module")
def images():
    return dev_images(2, 2)


@pytest.fixture(scope="module")
def clip_library(tmp_path_factory, weights, images, env):
    lib = tmp_path_factory.mktemp("cliplib") / "lib"
    proc = run_cli(
        "index",
        *map(str, images),
        "--library",
        str(lib),
        "--model",
        MODEL,
        "--weights",
        str(weights),
        "--json",
        env=env,
    )
    assert json.loads(proc.stdout)["added"] == len(images)
    return lib


def test_clip_library_stores_unit_vectors_of_the_models_dimension(
    clip_library, clip, weights, images
):
    with Library.open(clip_library) as lib:
        info = lib.model_info()
        _, vectors = lib.catalog.vectors()
        ids = {path: row[0] for path, row in lib.catalog.known_files().items()}
        stored = {p: lib.catalog.vector(ids[str(p)]) for p in images}
    assert info.name == MODEL and info.dim == DIM
    assert info.extra["weights"] == str(weights)
    assert vectors.shape == (len(images), DIM)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    # the CLI stored what the model computes for each file
    assert clip.info.key() == info.key()
    from lookalike.indexer.images import load_image

    pixels = np.stack(
        [clip.preprocess(load_image(p, min_side=clip.min_side).image) for p in images]
    )
    fresh = clip.embed(pixels).vectors
    assert (fresh * np.stack([stored[p] for p in images])).sum(axis=1).min() > 0.999


def test_search_text_json_ranks_by_text_image_cosine(clip_library, clip, images, env):
    text = "a photo of a leopard"
    proc = run_cli(
        "search", "--library", str(clip_library), "--text", text, "-k", "3", "--json", env=env
    )
    doc = json.loads(proc.stdout)
    assert len(doc) == 1 and doc[0]["query"] == text
    results = doc[0]["results"]
    assert len(results) == 3
    assert all(set(r) == {"id", "path", "score", "match"} for r in results)
    assert all(r["match"] is None for r in results)  # text finds look-alikes, not copies
    assert {r["path"] for r in results} <= {str(p) for p in images}
    # the same ranking computed here from the stored vectors and the text vector
    query = clip.embed_text([text])[0]
    with Library.open(clip_library) as lib:
        expected = sorted(
            (
                (float(lib.catalog.vector(i) @ query), lib.catalog.paths([i])[i])
                for i in ids_of(lib)
            ),
            reverse=True,
        )[:3]
    assert [r["path"] for r in results] == [p for _, p in expected]
    assert [r["score"] for r in results] == pytest.approx([s for s, _ in expected], abs=1e-4)


def ids_of(lib: Library) -> list[int]:
    return [row[0] for row in lib.catalog.known_files().values()]


def test_tag_suggest_runs_the_librarys_own_weights_file(clip_library, clip, images, tmp_path, env):
    """Zero-shot suggestions load the model the library recorded: its spec plus its
    --weights file (the Hugging Face cache here is empty, so nothing else could load)."""
    from lookalike.indexer.models.openclip import zero_shot_scores

    lib = tmp_path / "lib"
    shutil.copytree(clip_library, lib)
    for path, label in [(images[0], "leopard"), (images[2], "face")]:
        run_cli("labels", "set", str(path), "--as", label, "--library", str(lib), env=env)
    proc = run_cli("tag", "--suggest", "--json", "--top", "2", "--library", str(lib), env=env)
    doc = json.loads(proc.stdout)
    assert doc["source"] == "clip-zero-shot:labels"
    got = {e["path"]: e["suggestions"] for e in doc["images"]}
    assert set(got) == {str(images[1]), str(images[3])}
    with Library.open(lib) as opened:
        ids = {path: row[0] for path, row in opened.catalog.known_files().items()}
        vectors = np.stack([opened.catalog.vector(ids[p]) for p in got])
    probs = zero_shot_scores(clip, vectors, ["face", "leopard"])
    for (path, suggestions), row in zip(got.items(), probs, strict=True):
        expected = sorted(zip(row, ["face", "leopard"], strict=True), reverse=True)
        assert [s["label"] for s in suggestions] == [n for _, n in expected], path
        assert [s["score"] for s in suggestions] == pytest.approx(
            [float(p) for p, _ in expected], abs=1e-3
        )


def test_text_search_refuses_a_cnn_library_with_one_clear_line(tmp_path, env):
    from lookalike.indexer.models.efficientnet import EfficientNetLite0

    Library.create(tmp_path / "cnn", EfficientNetLite0().info).close()
    proc = run_cli(
        "search", "--library", str(tmp_path / "cnn"), "--text", "a red car", check=False, env=env
    )
    assert proc.returncode == 1 and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "needs a CLIP library" in lines[0] and "efficientnet-lite0" in lines[0]
    assert "--model openclip:" in lines[0]


def test_other_weights_on_a_clip_library_are_a_mismatch(clip_library, weights, tmp_path, env):
    import torch

    state = torch.load(weights, weights_only=True)
    state["logit_scale"] += 1.0
    torch.save(state, tmp_path / "other.pt")
    before = (clip_library / "catalog.sqlite").read_bytes()
    proc = run_cli(
        "index", *map(str, dev_images(3, 1)), "--library", str(clip_library),
        "--weights", str(tmp_path / "other.pt"), check=False, env=env,
    )  # fmt: skip
    assert proc.returncode == 1
    assert "weights sha256" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert (clip_library / "catalog.sqlite").read_bytes() == before
    with Library.open(clip_library) as lib:
        assert lib.catalog.count() == 2 * 2


def test_cnn_model_on_a_clip_library_is_a_mismatch(clip_library, env):
    proc = run_cli(
        "index", str(dev_images(1, 1)[0]), "--library", str(clip_library),
        "--model", "efficientnet-lite0", check=False, env=env,
    )  # fmt: skip
    assert proc.returncode == 1
    assert f"built with model '{MODEL}', not 'efficientnet-lite0'" in proc.stderr


def test_no_weights_offline_is_one_clear_error_and_no_library(tmp_path, env):
    lib = tmp_path / "lib"
    proc = run_cli(
        "index", str(dev_images(1, 1)[0]), "--library", str(lib),
        "--model", "openclip:ViT-B-32:laion2b_s34b_b79k", check=False, env=env,
    )  # fmt: skip
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "no weights for openclip:ViT-B-32:laion2b_s34b_b79k offline" in lines[0]
    assert "Hugging Face cache" in lines[0] and "--weights FILE" in lines[0]
    assert not (lib / "catalog.sqlite").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--text", "   "], "the text query is empty"),
        (["--text", "a cat", "query.jpg"], "not both"),
        ([], "give one or more query IMAGES, or --text TEXT"),
    ],
)
def test_bad_text_queries_are_one_line(clip_library, args, message, env):
    proc = run_cli("search", "--library", str(clip_library), *args, check=False, env=env)
    assert proc.returncode == 1 and message in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
