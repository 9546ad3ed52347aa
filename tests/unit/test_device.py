"""Embedding devices: cpu / cuda / auto, the torch path against ONNX, clear errors.

There is no GPU where these tests run: the CUDA code path is exercised with
device="cpu" forced through the torch backend (the same code, moved to "cpu"), and
"auto"/"cuda" are checked with torch's CUDA probe patched.
"""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest

from lookalike.indexer.errors import LookalikeError, ModelUnavailable
from lookalike.indexer.images import load_image
from lookalike.indexer.models.device import DeviceUnavailable, resolve_device
from lookalike.indexer.models.protocol import ModelInfo
from lookalike.indexer.models.registry import load_embedder
from lookalike.indexer.ray import stages as ray_stages
from tests.support.data import dev_images


@pytest.fixture
def cuda_present(monkeypatch):
    """torch reports one CUDA GPU (nothing may actually run on it)."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)


@pytest.fixture
def cuda_absent(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.fixture(scope="module")
def onnx_model():
    return load_embedder("efficientnet-lite0")


@pytest.fixture(scope="module")
def batch(onnx_model):
    images = [load_image(p, min_side=256).image for p in dev_images(6, 2)]
    return np.stack([onnx_model.preprocess(im) for im in images])


def test_cpu_is_the_default_and_stays_on_onnx(onnx_model):
    assert (onnx_model.device, onnx_model.backend) == ("cpu", "onnx")
    explicit = load_embedder("efficientnet-lite0", device="cpu")
    assert (explicit.device, explicit.backend) == ("cpu", "onnx")


def test_resolving_cpu_never_imports_torch():
    code = (
        "import sys; from lookalike.indexer.models.device import resolve_device; "
        "assert resolve_device('cpu') == 'cpu' and resolve_device(None) == 'cpu'; "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_torch_device_path_matches_onnx(onnx_model, batch):
    """The code that runs on CUDA (torch model .to(device), uint8 batch .to(device))."""
    torch_model = load_embedder("efficientnet-lite0:torch", device="cpu")
    assert (torch_model.device, torch_model.backend) == ("cpu", "torch")
    assert torch_model.info.key() == onnx_model.info.key()  # one library, either device
    ours, ref = torch_model.embed(batch), onnx_model.embed(batch)
    assert ours.vectors.dtype == np.float32 and ours.vectors.shape == ref.vectors.shape
    assert np.allclose(np.linalg.norm(ours.vectors, axis=1), 1.0, atol=1e-5)
    assert (ours.vectors * ref.vectors).sum(axis=1).min() >= 0.9999
    assert np.array_equal(ours.class_probs.argmax(1), ref.class_probs.argmax(1))
    # A read-only batch (as Ray hands over) goes through the torch path too.
    frozen = batch.copy()
    frozen.flags.writeable = False
    np.testing.assert_allclose(torch_model.embed(frozen).vectors, ours.vectors, atol=1e-6)
    cams = torch_model.class_activation(batch[:2])
    assert cams.shape == (2, 7, 7) and cams.dtype == np.float32


def test_auto_picks_cuda_and_the_torch_model_when_torch_sees_a_gpu(cuda_present):
    assert resolve_device("auto") == "cuda"
    assert resolve_device("cuda:0") == "cuda:0"
    model = load_embedder("efficientnet-lite0", device="auto")  # nothing runs yet
    assert (model.device, model.backend) == ("cuda", "torch")
    with pytest.raises(LookalikeError, match="runs on the CPU only"):
        load_embedder("efficientnet-lite0:onnx", device="cuda")
    with pytest.raises(DeviceUnavailable, match="finds 1 CUDA GPU"):
        resolve_device("cuda:1")


def test_auto_falls_back_to_the_cpu_without_a_gpu(cuda_absent):
    assert resolve_device("auto") == "cpu"
    model = load_embedder(device="auto")
    assert (model.device, model.backend) == ("cpu", "onnx")


def test_cuda_without_cuda_is_a_clear_error(cuda_absent):
    with pytest.raises(DeviceUnavailable) as caught:
        load_embedder("efficientnet-lite0", device="cuda")
    err = caught.value
    assert isinstance(err, ModelUnavailable) and err.device == "cuda"
    assert "no CUDA GPU" in str(err) and "--device cpu" in str(err)


def test_openclip_cuda_without_cuda_fails_before_reading_weights(cuda_absent, tmp_path):
    # The weights file does not exist: the device is checked first.
    with pytest.raises(DeviceUnavailable, match="--device cpu"):
        load_embedder("openclip:ViT-S-32-alt", weights=tmp_path / "none.pt", device="cuda")


def test_unknown_device_is_refused():
    for bad in ("gpu", "cuda:x", "auto:0", "tpu"):
        with pytest.raises(LookalikeError, match="unknown device"):
            resolve_device(bad)


class _FakeClipModel:
    """Just enough of an open_clip model to check where tensors go."""

    def __init__(self) -> None:
        import torch

        self.visual = SimpleNamespace(
            preprocess_cfg={
                "size": 8,
                "mean": (0.5, 0.5, 0.5),
                "std": (0.25, 0.25, 0.25),
                "interpolation": "bicubic",
                "resize_mode": "shortest",
            }
        )
        self.logit_scale = torch.tensor(0.0)
        self.moved_to: list[str] = []
        self.seen: list = []

    def eval(self):
        return self

    def to(self, device):
        self.moved_to.append(str(device))
        return self

    def encode_image(self, x):
        self.seen.append((x.device.type, x.dtype))
        return x.mean(dim=(2, 3))  # (n, 3)

    def encode_text(self, tokens):
        self.seen.append((tokens.device.type, tokens.dtype))
        return tokens[:, :3].float()


def test_openclip_moves_model_and_inputs_to_its_device():
    import torch

    from lookalike.indexer.models.openclip import OpenClipEmbedder

    model = _FakeClipModel()
    info = ModelInfo(name="openclip:fake", dim=3, preprocessing="p", weights_hash="0")
    clip = OpenClipEmbedder(model, lambda texts: torch.ones(len(texts), 5, dtype=torch.long), info)
    assert clip.device == "cpu" and model.moved_to == ["cpu"]
    batch = np.full((2, 8, 8, 3), 160, dtype=np.uint8)
    out = clip.embed(batch)
    # (160 - 127.5) / 63.75 on every channel: the normalisation ran on the device tensors
    assert model.seen[-1] == ("cpu", torch.float32)
    np.testing.assert_allclose(out.vectors, np.full((2, 3), 1 / np.sqrt(3)), atol=1e-6)
    text = clip.embed_text(["a", "b"])
    assert model.seen[-1] == ("cpu", torch.long) and text.dtype == np.float32


# -- Ray model actors -------------------------------------------------------------
def _fake_ray(monkeypatch, gpu_ids):
    monkeypatch.setitem(sys.modules, "ray", SimpleNamespace(get_gpu_ids=lambda: gpu_ids))


def test_actor_without_a_gpu_embeds_on_cpu_without_asking_torch(monkeypatch):
    _fake_ray(monkeypatch, [])

    def no_torch(device):
        raise AssertionError("a CPU actor consulted torch")

    monkeypatch.setattr(ray_stages, "resolve_device", no_torch)
    assert ray_stages.actor_device("auto") == "cpu"
    assert ray_stages.actor_device("cpu") == "cpu"


def test_actor_with_a_gpu_uses_cuda_when_torch_sees_it(monkeypatch, cuda_present):
    _fake_ray(monkeypatch, ["0"])
    assert ray_stages.actor_device("auto") == "cuda"


def test_actor_with_a_gpu_but_no_cuda_in_torch_falls_back(monkeypatch, cuda_absent):
    _fake_ray(monkeypatch, ["0"])
    assert ray_stages.actor_device("auto") == "cpu"


def test_gpu_actor_loads_its_model_on_cuda_in_bigger_batches(monkeypatch, tmp_path):
    asked = []

    def fake_embedder(model, **options):
        asked.append(options)
        return SimpleNamespace(device=options["device"])

    monkeypatch.setattr(ray_stages, "_embedder_in_worker", fake_embedder)
    info = ModelInfo(name="fake", dim=4, preprocessing="none", weights_hash="0").to_json()
    gpu = ray_stages.ShardEmbedder(info, str(tmp_path), batch_size=8, threads=1, device="cuda")
    cpu = ray_stages.ShardEmbedder(info, str(tmp_path), batch_size=8, threads=1, device="cpu")
    assert (gpu.device, gpu.batch_size) == ("cuda", ray_stages.CUDA_BATCH)
    assert (cpu.device, cpu.batch_size) == ("cpu", 8)
    assert [a["device"] for a in asked] == ["cuda", "cpu"]


def test_actor_plan_follows_the_device():
    from lookalike.indexer.ray.engine import RayOptions, _actor_plan

    gpus = {"CPU": 16.0, "GPU": 2.0}
    assert _actor_plan(gpus, RayOptions(device="auto"))[:2] == (2, 1)
    assert _actor_plan(gpus, RayOptions(device="cuda"))[:2] == (2, 1)
    assert _actor_plan(gpus, RayOptions(device="cpu"))[:2] == (16, 0)
    assert _actor_plan({"CPU": 4.0}, RayOptions(device="auto"))[:2] == (4, 0)
    with pytest.raises(LookalikeError, match="--device cuda: the Ray cluster has no GPUs"):
        _actor_plan({"CPU": 4.0}, RayOptions(device="cuda"))
    with pytest.raises(LookalikeError, match="disagree"):
        _actor_plan(gpus, RayOptions(device="cpu", gpus=True))
    with pytest.raises(LookalikeError, match="disagree"):
        _actor_plan(gpus, RayOptions(device="cuda", gpus=False))
