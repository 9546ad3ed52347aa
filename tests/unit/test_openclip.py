"""The open_clip backend with a randomly initialised model: no network, no pretrained weights."""

from __future__ import annotations

import hashlib
import socket

import numpy as np
import pytest
from PIL import Image

from lookalike.indexer.errors import BadQuery, LookalikeError, ModelUnavailable
from lookalike.indexer.images import load_image
from lookalike.indexer.models.openclip import (
    ClipSpec,
    OpenClipEmbedder,
    cached_checkpoint,
    parse_spec,
    resolve_weights,
    weights_sha256,
    zero_shot_scores,
)
from lookalike.indexer.models.protocol import ModelInfo
from lookalike.indexer.models.registry import load_embedder, load_embedder_for
from lookalike.indexer.store.library import Library
from lookalike.search.searcher import Searcher
from tests.support.clip import ARCH, DIM, save_random_checkpoint
from tests.support.data import dev_images


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Any attempt to open a connection fails the test instead of hanging."""

    def refuse(*args, **kwargs):
        raise AssertionError("the open_clip backend tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture
def empty_hf_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-hub"))
    return tmp_path / "hf-hub"


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return save_random_checkpoint(tmp_path_factory.mktemp("clip") / "tiny.pt")


@pytest.fixture(scope="module")
def clip(weights):
    return load_embedder(f"openclip:{ARCH}", weights=weights)


@pytest.fixture(scope="module")
def images():
    return [load_image(p).image for p in dev_images(2, 2)]


def test_model_info_names_arch_and_hashes_the_file(clip, weights):
    info = clip.info
    assert info.name == f"openclip:{ARCH}" and info.dim == DIM
    assert info.weights_hash == hashlib.sha256(weights.read_bytes()).hexdigest()[:16]
    assert info.extra == {"weights": str(weights)}
    assert "224" in info.preprocessing and "bicubic" in info.preprocessing
    assert clip.class_names() is None


def test_preprocess_is_open_clips_resize_and_crop(clip, images):
    import open_clip

    reference = open_clip.image_transform(224, is_train=False)  # resize, crop, to tensor, norm
    mean = np.array(open_clip.OPENAI_DATASET_MEAN)[:, None, None]
    std = np.array(open_clip.OPENAI_DATASET_STD)[:, None, None]
    for image in images:
        ours = clip.preprocess(image)
        assert ours.dtype == np.uint8 and ours.shape == (224, 224, 3)
        theirs = (reference(image).numpy() * std + mean) * 255.0  # undo the normalisation
        assert np.abs(ours.transpose(2, 0, 1) - theirs).max() < 0.6


def test_embed_matches_open_clip_and_is_unit_length(clip, images):
    import open_clip
    import torch

    batch = np.stack([clip.preprocess(im) for im in images])
    out = clip.embed(batch)
    assert out.vectors.dtype == np.float32 and out.vectors.shape == (len(images), DIM)
    assert np.allclose(np.linalg.norm(out.vectors, axis=1), 1.0, atol=1e-5)
    assert out.class_probs is None
    reference = open_clip.image_transform(224, is_train=False)
    with torch.inference_mode():
        ref = clip.model.encode_image(torch.stack([reference(im) for im in images]), normalize=True)
    assert (out.vectors * ref.numpy()).sum(axis=1).min() > 0.9999
    # a random model still tells images apart: the vectors are not all the same
    assert (out.vectors @ out.vectors.T)[np.triu_indices(len(images), 1)].max() < 0.9999


def test_embed_rejects_a_wrong_batch_shape(clip):
    with pytest.raises(ValueError, match="224"):
        clip.embed(np.zeros((1, 256, 256, 3), np.uint8))


def test_embed_text_is_unit_length_and_matches_open_clip(clip):
    import torch

    texts = ["a red car", "a photo of a leopard", "x"]
    vectors = clip.embed_text(texts)
    assert vectors.shape == (3, DIM) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    with torch.inference_mode():
        ref = clip.model.encode_text(clip.tokenizer(texts), normalize=True).numpy()
    assert np.allclose(vectors, ref, atol=1e-5)
    assert not np.allclose(vectors[0], vectors[1])
    assert clip.embed_text([]).shape == (0, DIM)


def test_zero_shot_scores_are_a_softmax_that_picks_the_matching_label(clip):
    labels = ["leopard", "airplane", "face", "motorbike"]
    text = clip.embed_text([f"a photo of a {label}." for label in labels])
    scores = zero_shot_scores(clip, text[[2, 0, 3]], labels)
    assert scores.shape == (3, 4) and scores.dtype == np.float32
    assert np.allclose(scores.sum(axis=1), 1.0, atol=1e-5)
    assert list(scores.argmax(axis=1)) == [2, 0, 3]
    assert zero_shot_scores(clip, text, []).shape == (4, 0)


def test_reload_from_library_info_gives_the_same_model(clip):
    again = load_embedder_for(clip.info)
    assert isinstance(again, OpenClipEmbedder) and again.info.key() == clip.info.key()


def test_other_weights_are_another_model(clip, weights, tmp_path):
    import torch

    state = torch.load(weights, weights_only=True)
    state["logit_scale"] += 1.0
    torch.save(state, tmp_path / "other.pt")
    other = load_embedder(f"openclip:{ARCH}", weights=tmp_path / "other.pt")
    assert other.info.name == clip.info.name and other.info.key() != clip.info.key()
    assert other.logit_scale == pytest.approx(clip.logit_scale * np.e, rel=1e-2)


def test_a_checkpoint_of_another_architecture_is_a_clear_error(weights):
    with pytest.raises(ModelUnavailable, match="cannot load .*tiny.pt as open_clip ViT-S-32"):
        load_embedder("openclip:ViT-S-32", weights=weights)


def test_a_file_that_is_no_checkpoint_is_a_clear_error(tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelUnavailable, match="cannot load .*junk.pt"):
        load_embedder(f"openclip:{ARCH}", weights=junk)
    with pytest.raises(ModelUnavailable, match="not found"):
        load_embedder(f"openclip:{ARCH}", weights=tmp_path / "missing.pt")


@pytest.mark.parametrize(
    "spec, message",
    [
        ("openclip:ViT-Nope-32:openai", "unknown open_clip architecture 'ViT-Nope-32'"),
        (
            "openclip:ViT-B-32:no_such_tag",
            "unknown pretrained tag 'no_such_tag'.*laion2b_s34b_b79k",
        ),
    ],
)
def test_bad_specs_say_what_exists(spec, message):
    with pytest.raises(LookalikeError, match=message):
        load_embedder(spec)


def test_no_weights_offline_names_both_ways_out(empty_hf_cache):
    with pytest.raises(ModelUnavailable) as err:
        load_embedder("openclip:ViT-B-32:laion2b_s34b_b79k")
    message = str(err.value)
    assert "Hugging Face cache" in message and str(empty_hf_cache) in message
    assert "--weights FILE" in message and "laion/CLIP-ViT-B-32-laion2B-s34B-b79K" in message
    assert "\n" not in message
    with pytest.raises(ModelUnavailable, match="--weights FILE"):
        load_embedder("openclip:ViT-B-32")  # no tag, no file


def _fake_hf_cache(root, repo: str, filename: str, content: bytes):
    """The layout huggingface_hub writes: blobs named by sha256, snapshots linking to them."""
    folder = root / f"models--{repo.replace('/', '--')}"
    digest = hashlib.sha256(content).hexdigest()
    (folder / "blobs").mkdir(parents=True)
    (folder / "blobs" / digest).write_bytes(content)
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text("0" * 40)
    snapshot = folder / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (snapshot / filename).symlink_to(folder / "blobs" / digest)
    return snapshot / filename, digest


def test_pretrained_tags_resolve_in_the_hf_cache_without_downloading(empty_hf_cache):
    spec = parse_spec("openclip:ViT-B-32:laion2b_s34b_b79k")
    assert spec == ClipSpec("ViT-B-32", "laion2b_s34b_b79k")
    assert cached_checkpoint(spec) is None
    path, digest = _fake_hf_cache(
        empty_hf_cache, "laion/CLIP-ViT-B-32-laion2B-s34B-b79K", "open_clip_model.safetensors", b"w"
    )
    assert resolve_weights(spec, None) == path
    assert weights_sha256(path) == digest  # read from the blob name, not by hashing 600 MB
    # --weights wins over the cache
    assert resolve_weights(spec, path.parent / "open_clip_model.safetensors") == path


def test_text_search_refuses_a_cnn_library(tmp_path):
    cnn = ModelInfo("efficientnet-lite0", 1280, "resize256-crop224", "abc")
    Library.create(tmp_path / "lib", cnn).close()
    searcher = Searcher.open(tmp_path / "lib")
    try:
        with pytest.raises(BadQuery, match="needs a CLIP library.*--model openclip:"):
            searcher.search_text("a red car")
    finally:
        searcher.close()


def test_text_search_over_a_library(clip, tmp_path):
    from lookalike.indexer.batch import IndexOptions, index_paths

    paths = dev_images(2, 2)
    with Library.create(tmp_path / "lib", clip.info) as lib:
        index_paths(lib, clip, [str(p) for p in paths], IndexOptions(progress=False))
    searcher = Searcher(Library.open(tmp_path / "lib"), clip)
    try:
        results = searcher.search_text("a photo of a leopard", k=10)
        assert sorted(r.path for r in results) == sorted(str(p) for p in paths)
        # the ranking is the text vector's cosine with the stored image vectors
        text = clip.embed_text(["a photo of a leopard"])[0]
        for r in results:
            assert r.score == pytest.approx(
                float(searcher.library.catalog.vector(r.id) @ text), 1e-5
            )
        assert [r.score for r in results] == sorted((r.score for r in results), reverse=True)
        with pytest.raises(BadQuery, match="empty"):
            searcher.search_text("   ")
        # an image query finds itself first
        assert searcher.search(paths[1], k=1)[0].path == str(paths[1])
    finally:
        searcher.close()


def test_preprocess_accepts_any_mode(clip):
    gray = Image.new("L", (300, 120), 128)
    assert clip.preprocess(gray).shape == (224, 224, 3)
