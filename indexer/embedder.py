"""Embedding models: the interface, the model description, and the registry.

An embedder turns RGB images into L2-normalised float32 vectors. Preprocessing
(the PIL part) runs in the loader threads through ``preprocess``; ``embed`` takes
the stacked uint8 batch, so the model never waits on decoding.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Protocol

import numpy as np
import numpy.typing as npt
from PIL import Image

from indexer.errors import LookalikeError

FeatureVector = npt.NDArray[np.float32]
DEFAULT_MODEL = "efficientnet-lite0"


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

    def preprocess(self, image: Image.Image) -> np.ndarray:
        """One RGB image to the model's uint8 HWC input array (runs in loader threads)."""
        ...

    def embed(self, batch: np.ndarray) -> EmbedOutput:
        """A stacked uint8 NHWC batch to vectors (and class scores where available)."""
        ...

    def class_names(self) -> list[str] | None:
        """Names of the classifier head's classes, or None without one."""
        ...


def l2_normalize(x: np.ndarray) -> FeatureVector:
    """Rows divided by their L2 norm (zero rows stay zero), as float32."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)


def softmax(logits: np.ndarray) -> npt.NDArray[np.float32]:
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)


def load_embedder(spec: str | None = None, **options) -> Embedder:
    """Build the embedder named by ``spec`` (default: the offline EfficientNet-Lite0).

    Args:
        spec: "efficientnet-lite0" (optionally "efficientnet-lite0:torch" for the
            eager torch reference) or "openclip:ARCH:PRETRAINED".
        options: backend options (for example ``weights=`` for open_clip).

    Raises:
        LookalikeError: an unknown spec.
        ModelUnavailable: the weights cannot be found offline.
    """
    spec = spec or DEFAULT_MODEL
    if spec == DEFAULT_MODEL or spec.startswith(DEFAULT_MODEL + ":"):
        from indexer.efficientnet import EfficientNetLite0

        if options.pop("weights", None) is not None:
            raise LookalikeError(f"--weights FILE applies to openclip models, not {spec}")
        backend = spec.split(":", 1)[1] if ":" in spec else "onnx"
        return EfficientNetLite0(backend=backend, **options)
    if spec.startswith("openclip:"):
        try:
            from indexer.openclip import OpenClipEmbedder
        except ImportError as e:  # the open_clip backend arrives with the search work
            raise LookalikeError(f"model {spec!r} needs the open_clip backend: {e}") from e
        return OpenClipEmbedder.from_spec(spec, **options)
    raise LookalikeError(f"unknown model {spec!r}; use {DEFAULT_MODEL} or openclip:ARCH:PRETRAINED")


def load_embedder_for(info: ModelInfo) -> Embedder:
    """The embedder that built a library: its model spec plus the stored weights file, if any."""
    weights = info.extra.get("weights")
    return load_embedder(info.name, **({"weights": weights} if weights else {}))
