"""Embedding models: the interface, the model description, and the registry.

An embedder turns RGB images into L2-normalised float32 vectors. Preprocessing
(the PIL part) runs in the loader threads through ``preprocess``; ``embed`` takes
the stacked uint8 batch, so the model never waits on decoding.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Protocol

import numpy as np
import numpy.typing as npt
from PIL import Image

from lookalike.indexer.errors import LookalikeError, ModelUnavailable

if TYPE_CHECKING:
    from typing_extensions import TypeIs  # typing.TypeIs from Python 3.13

FeatureVector = npt.NDArray[np.float32]
DEFAULT_MODEL = "efficientnet-lite0"
DEVICES = ("auto", "cpu", "cuda")  # what --device takes ("cuda:N" is accepted too)


class DeviceUnavailable(ModelUnavailable):
    """A model was asked to run on a device this machine (or its torch build) lacks."""

    def __init__(self, device: str, reason: str) -> None:
        self.device = device
        self.reason = reason
        super().__init__(
            f"cannot embed on {device}: {reason}; use --device cpu "
            f"(or --device auto, which takes a GPU only where there is one)"
        )


@dataclass(frozen=True)
class ModelInfo:
    """What produced a library's vectors; two libraries mix only if these are equal."""

    name: str  # the spec a user passes to --model, e.g. "efficientnet-lite0"
    dim: int  # embedding dimension
    preprocessing: str  # a readable description of the input transform
    weights_hash: str  # sha256 (prefix) of the weights file, "" for random weights
    descriptor: str = "gap-l2"  # how feature maps become the vector
    extra: dict = field(default_factory=dict)  # backend-specific facts (not compared)

    def key(self) -> str:
        """The identity compared when a library is opened."""
        return f"{self.name}|{self.dim}|{self.preprocessing}|{self.weights_hash}|{self.descriptor}"

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ModelInfo:
        return cls(**json.loads(text))


@dataclass
class EmbedOutput:
    """One batch's vectors and, where the model has a classifier head, its class scores."""

    vectors: FeatureVector  # (n, dim), rows L2-normalised
    class_probs: npt.NDArray[np.float32] | None = None  # (n, classes) softmax, or None


class Embedder(Protocol):
    """What the indexer and the searcher need of a model."""

    info: ModelInfo
    min_side: int  # the shorter side the loader must decode at least (JPEG draft)
    device: str  # where ``embed`` runs: "cpu", "cuda" or "cuda:N" (never "auto")

    def preprocess(self, image: Image.Image) -> np.ndarray:
        """One RGB image to the model's uint8 HWC input array (runs in loader threads)."""
        ...

    def embed(self, batch: np.ndarray, class_probs: bool = True) -> EmbedOutput:
        """A stacked uint8 NHWC batch to vectors, and class scores where available
        (``class_probs=False``: vectors only, when the model can skip its head)."""
        ...

    def class_names(self) -> list[str] | None:
        """Names of the classifier head's classes, or None without one."""
        ...


class TextEmbedder(Embedder, Protocol):
    """An embedder that also maps texts into its image space (CLIP)."""

    @property
    def logit_scale(self) -> float:
        """The model's temperature for softmax over cosine similarities."""
        ...

    def embed_text(self, texts: Sequence[str]) -> FeatureVector:
        """Texts to L2-normalised vectors in the image space, shape (len(texts), dim)."""
        ...


def has_text_encoder(embedder: Embedder) -> TypeIs[TextEmbedder]:
    """True when ``embedder`` embeds texts too (checked without loading anything)."""
    return hasattr(embedder, "embed_text")


def l2_normalize(x: np.ndarray) -> FeatureVector:
    """Rows divided by their L2 norm (zero rows stay zero), as float32."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)


def softmax(logits: np.ndarray) -> npt.NDArray[np.float32]:
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)


def resolve_device(device: str | None = "cpu") -> str:
    """The device a model runs on: "cpu", "cuda" or "cuda:N".

    "cpu" (the default) never imports torch. "auto" is "cuda" when torch sees a CUDA
    GPU, else "cpu".

    Raises:
        LookalikeError: not one of auto, cpu, cuda, cuda:N.
        DeviceUnavailable: a CUDA device asked for where torch finds none.
    """
    name = (device or "cpu").strip().lower()
    if name == "cpu":
        return "cpu"
    kind, colon, index = name.partition(":")
    if kind not in ("auto", "cuda") or (colon and (kind == "auto" or not index.isdigit())):
        raise LookalikeError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N")
    import torch

    available = torch.cuda.is_available()
    if kind == "auto":
        return "cuda" if available else "cpu"
    if not available:
        built = f"built for CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
        raise DeviceUnavailable(name, f"torch {torch.__version__} ({built}) finds no CUDA GPU")
    if index and int(index) >= torch.cuda.device_count():
        raise DeviceUnavailable(name, f"torch finds {torch.cuda.device_count()} CUDA GPU(s)")
    return name


def load_embedder(spec: str | None = None, *, device: str = "cpu", **options) -> Embedder:
    """Build the embedder named by ``spec`` (default: the offline EfficientNet-Lite0).

    Args:
        spec: "efficientnet-lite0" (optionally "efficientnet-lite0:torch" for the
            eager torch reference) or "openclip:ARCH:PRETRAINED".
        device: "cpu" (default), "cuda", "cuda:N" or "auto" (cuda when torch sees a
            GPU). On the CPU the default model runs on ONNX Runtime; on CUDA it runs
            its torch reference model (the same weights and preprocessing).
        options: backend options (for example ``weights=`` for open_clip).

    Raises:
        LookalikeError: an unknown spec or device.
        ModelUnavailable: the weights cannot be found offline.
        DeviceUnavailable: ``device`` is a CUDA device and torch finds none.
    """
    spec = spec or DEFAULT_MODEL
    if spec == DEFAULT_MODEL or spec.startswith(DEFAULT_MODEL + ":"):
        from lookalike.indexer.models.efficientnet import EfficientNetLite0

        if options.pop("weights", None) is not None:
            raise LookalikeError(f"--weights FILE applies to openclip models, not {spec}")
        backend = spec.split(":", 1)[1] if ":" in spec else None  # None: by device
        return EfficientNetLite0(backend=backend, device=device, **options)
    if spec.startswith("openclip:"):
        try:
            from lookalike.indexer.models.openclip import OpenClipEmbedder
        except ImportError as e:  # the open_clip backend arrives with the search work
            raise LookalikeError(f"model {spec!r} needs the open_clip backend: {e}") from e
        return OpenClipEmbedder.from_spec(spec, device=device, **options)
    raise LookalikeError(f"unknown model {spec!r}; use {DEFAULT_MODEL} or openclip:ARCH:PRETRAINED")


def load_embedder_for(info: ModelInfo, device: str = "cpu") -> Embedder:
    """The embedder that built a library: its model spec plus the stored weights file, if any."""
    weights = info.extra.get("weights")
    return load_embedder(info.name, device=device, **({"weights": weights} if weights else {}))
