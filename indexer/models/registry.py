"""The models Lookalike knows, by spec: the one place that reads a model spec.

Specs: ``efficientnet-lite0`` (the default CNN, offline; ``efficientnet-lite0:torch``
for its eager torch reference) and ``openclip:ARCH[:PRETRAINED]`` (CLIP models).
"""

from __future__ import annotations

from dataclasses import replace

from lookalike.indexer.errors import LookalikeError
from lookalike.indexer.models.efficientnet import EfficientNetLite0
from lookalike.indexer.models.openclip import PREFIX as CLIP_PREFIX
from lookalike.indexer.models.openclip import OpenClipEmbedder
from lookalike.indexer.models.protocol import Embedder, ModelInfo

DEFAULT_MODEL = "efficientnet-lite0"
EXAMPLE_CLIP_MODEL = "openclip:ViT-B-32:laion2b_s34b_b79k"


def is_default_model(spec: str) -> bool:
    """True for the default CNN, in either of its backends."""
    return spec == DEFAULT_MODEL or spec.startswith(DEFAULT_MODEL + ":")


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
    if is_default_model(spec):
        if options.pop("weights", None) is not None:
            raise LookalikeError(f"--weights FILE applies to openclip models, not {spec}")
        backend = spec.split(":", 1)[1] if ":" in spec else None  # None: by device
        return EfficientNetLite0(backend=backend, device=device, **options)
    if spec.startswith(CLIP_PREFIX):
        return OpenClipEmbedder.from_spec(spec, device=device, **options)
    raise LookalikeError(f"unknown model {spec!r}; use {DEFAULT_MODEL} or openclip:ARCH:PRETRAINED")


def load_embedder_for(info: ModelInfo, device: str = "cpu", **options) -> Embedder:
    """The embedder that built a library: its model spec plus the stored weights file, if any."""
    weights = info.extra.get("weights")
    if weights:
        options["weights"] = weights
    return load_embedder(info.name, device=device, **options)


def with_capabilities(info: ModelInfo) -> ModelInfo:
    """``info`` with the capabilities of its model family, for a model description
    recorded before ModelInfo carried them."""
    if is_default_model(info.name):
        return replace(info, class_head=True)
    if info.name.startswith(CLIP_PREFIX):
        return replace(info, text_encoder=True)
    return info
