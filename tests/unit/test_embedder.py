"""The default embedder: ONNX Runtime against the torch reference, decoding shortcuts."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from lookalike.indexer.errors import LookalikeError
from lookalike.indexer.images import load_image
from lookalike.indexer.models.efficientnet import EXPORT_VERSION, head_path
from lookalike.indexer.models.registry import load_embedder
from tests.support.data import DATA, dev_images


@pytest.fixture(scope="module")
def onnx_model():
    return load_embedder("efficientnet-lite0")


@pytest.fixture(scope="module")
def batch(onnx_model):
    images = [load_image(p, min_side=256).image for p in dev_images(4, 2)]
    return np.stack([onnx_model.preprocess(im) for im in images])


def test_onnx_matches_torch_reference(onnx_model, batch):
    torch_model = load_embedder("efficientnet-lite0:torch")
    assert torch_model.info.key() == onnx_model.info.key()
    ours = onnx_model.embed(batch)
    ref = torch_model.embed(batch)
    cosines = (ours.vectors * ref.vectors).sum(axis=1)
    assert cosines.min() >= 0.99999
    assert np.array_equal(ours.class_probs.argmax(1), ref.class_probs.argmax(1))


def test_vectors_without_the_head_are_the_same(onnx_model, batch):
    """Search queries skip the ImageNet head (it runs in numpy, only when asked for)."""
    full = onnx_model.embed(batch)
    bare = onnx_model.embed(batch, class_probs=False)
    assert bare.class_probs is None and full.class_probs.shape == (len(batch), 1000)
    np.testing.assert_array_equal(bare.vectors, full.vectors)
    np.testing.assert_allclose(full.class_probs.sum(axis=1), 1.0, atol=1e-5)


def test_vectors_are_unit_length_float32(onnx_model, batch):
    out = onnx_model.embed(batch)
    assert out.vectors.dtype == np.float32 and out.vectors.shape == (len(batch), 1280)
    assert np.allclose(np.linalg.norm(out.vectors, axis=1), 1.0, atol=1e-5)
    assert out.class_probs.shape == (len(batch), 1000)
    assert np.allclose(out.class_probs.sum(axis=1), 1.0, atol=1e-3)


def test_imagenet_head_recognises_a_leopard(onnx_model):
    leopard = sorted((DATA / "images/Leopards").glob("*.jpg"))[0]
    pixels = onnx_model.preprocess(load_image(leopard, min_side=256).image)
    probs = onnx_model.embed(pixels[None]).class_probs[0]
    top3 = [onnx_model.class_names()[i] for i in np.argsort(-probs)[:3]]
    assert {"leopard", "jaguar", "cheetah", "snow leopard"} & set(top3)


def test_reduced_size_decoding_keeps_the_embedding(onnx_model):
    photo = Image.open(dev_images(1, 1)[0]).convert("RGB").resize((4000, 3000), Image.BICUBIC)
    buf = io.BytesIO()
    photo.save(buf, "JPEG", quality=92)
    data = buf.getvalue()
    full = onnx_model.preprocess(load_image(data).image)
    draft = onnx_model.preprocess(load_image(data, min_side=onnx_model.min_side).image)
    vectors = onnx_model.embed(np.stack([full, draft])).vectors
    assert float(vectors[0] @ vectors[1]) >= 0.998


def test_stale_onnx_cache_is_built_again(tmp_path, monkeypatch, batch):
    monkeypatch.setenv("LOOKALIKE_CACHE", str(tmp_path))
    model = load_embedder("efficientnet-lite0")
    earlier = (
        tmp_path
        / "onnx"
        / f"tf_efficientnet_lite0-{model.info.weights_hash}-v{EXPORT_VERSION - 1}.onnx"
    )
    earlier.parent.mkdir()
    for old in (earlier, head_path(earlier)):  # an earlier version's pair: replaced
        old.write_bytes(b"a graph of an earlier version")
    path = model.onnx_path()
    assert path.exists() and path.is_relative_to(tmp_path)
    assert not earlier.exists() and not head_path(earlier).exists()
    path.write_bytes(b"not an onnx file")
    out = model.embed(batch[:1])  # recovers by building the graph again
    assert np.isclose(np.linalg.norm(out.vectors[0]), 1.0, atol=1e-5)
    head = head_path(path)  # the head graph beside it: the pair is built again
    head.write_bytes(b"not an onnx file either")
    again = load_embedder("efficientnet-lite0").embed(batch[:1])
    np.testing.assert_allclose(again.class_probs, out.class_probs, atol=1e-6)
    assert sorted(p.name for p in path.parent.iterdir()) == sorted([path.name, head.name])


def test_unknown_model_is_a_clear_error():
    with pytest.raises(LookalikeError, match="unknown model"):
        load_embedder("resnet-9000")


def test_a_query_alone_gets_every_thread_and_concurrent_ones_one_each():
    """busy_threads: the server's choice (lookalike.webapp.services._server_embedder)."""
    import threading

    from lookalike.indexer.models.efficientnet import EfficientNetLite0

    model = EfficientNetLite0(threads=2, busy_threads=1)
    release, used = threading.Event(), []

    class Session:
        def __init__(self, threads):
            self.threads = threads

        def run(self, outputs, feeds):
            used.append(self.threads)
            if self.threads == 2:
                release.wait(10)  # the first query is still running...
            return [np.zeros((1, 1280), np.float32)]

    model._sessions = {2: Session(2), 1: Session(1)}
    first = threading.Thread(target=model._run_onnx, args=(["pooled"], None))
    first.start()
    while not used:
        threading.Event().wait(0.01)
    model._run_onnx(["pooled"], None)  # ...when this one starts: one thread
    release.set()
    first.join()
    model._run_onnx(["pooled"], None)  # alone again: every thread
    with model.in_flight():  # a query in flight (decoding, say) while another embeds
        with model.in_flight():
            model._run_onnx(["pooled"], None)
        model._run_onnx(["pooled"], None)  # its own query only: alone
    assert used == [2, 1, 2, 1, 2]
