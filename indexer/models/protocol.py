"""What the rest of Lookalike needs of a model: the embedder protocol and the model description.

An embedder turns RGB images into L2-normalised float32 vectors. Preprocessing
(the PIL part) runs in the loader threads through ``preprocess``; ``embed`` takes
the stacked uint8 batch, so the model never waits on decoding. Which models exist
and how a spec is loaded is the registry's business (indexer/models/registry.py).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Protocol

import numpy as np
import numpy.typing as npt
from PIL import Image

if TYPE_CHECKING:
    from typing_extensions import TypeIs  # typing.TypeIs from Python 3.13

FeatureVector = npt.NDArray[np.float32]


@dataclass(frozen=True)
class ModelInfo:
    """What produced a library's vectors; two libraries mix only if their keys are equal."""

    name: str  # the spec a user passes to --model, e.g. "efficientnet-lite0"
    dim: int  # embedding dimension
    preprocessing: str  # a readable description of the input transform
    weights_hash: str  # sha256 (prefix) of the weights file, "" for random weights
    descriptor: str = "gap-l2"  # how feature maps become the vector
    extra: dict = field(default_factory=dict)  # backend-specific facts (not compared)
    # What the model can do besides embedding images (not compared either). A library
    # recorded before these existed gets them from the registry when it is opened.
    text_encoder: bool = False  # embeds texts into the image space: text search, zero-shot
    class_head: bool = False  # scores classes: ImageNet guesses, object localisation (CAM)

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

    def in_flight(self) -> AbstractContextManager[None]:
        """Marks a query's whole life (decoding, model, search): a model that shares its
        threads between queries (the default CNN) counts them; others do nothing."""
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
    return embedder.info.text_encoder
