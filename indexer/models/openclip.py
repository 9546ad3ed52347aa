"""open_clip embedders: CLIP image vectors, text queries and zero-shot label scores.

A spec names the model: ``openclip:ARCH:PRETRAINED`` (for example
``openclip:ViT-B-32:laion2b_s34b_b79k``). Weights come from one of two places,
and never from the network:

- the Hugging Face cache (``$HF_HUB_CACHE``, ``$HF_HOME/hub`` or
  ``~/.cache/huggingface/hub``), where open_clip's pretrained tags live; the file
  is looked up in the cache directly, so a missing file fails at once instead of
  trying (and hanging on) a download;
- ``weights=FILE``: a local open_clip checkpoint. ``PRETRAINED`` may then be
  left out (``openclip:ARCH``); when given, it must be an open_clip tag, and that
  tag's preprocessing (mean, std, interpolation) applies to the file.

The library records the checkpoint's sha256 in ``ModelInfo.weights_hash``, so a
library built with one checkpoint and opened with another is a ModelMismatch, and
the path of a ``weights=`` file in ``ModelInfo.extra["weights"]`` so a searcher can
load it again (see ``lookalike.indexer.models.registry.load_embedder_for``).

open_clip, torch and torchvision are the ``clip`` extra: they are imported inside
the functions that need them (this module itself loads without them), and where one
is missing the error is one line naming ``pip install "lookalike[clip]"``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image

from lookalike.indexer.errors import LookalikeError, ModelUnavailable, needs_extra
from lookalike.indexer.models.device import resolve_device
from lookalike.indexer.models.protocol import EmbedOutput, FeatureVector, ModelInfo, TextEmbedder
from lookalike.indexer.numerics import l2_normalize, softmax

log = logging.getLogger(__name__)

PREFIX = "openclip:"
DESCRIPTOR = "clip-l2"  # open_clip's projected image embedding, L2-normalised
DEFAULT_TEMPLATES = ("a photo of a {label}.",)
# The file names open_clip looks for in a Hugging Face repo, in its order of preference.
HF_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
_SHA256_BLOB = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class ClipSpec:
    """A parsed ``openclip:ARCH[:PRETRAINED]`` spec."""

    arch: str  # an open_clip architecture, e.g. "ViT-B-32"
    pretrained: str  # an open_clip pretrained tag, or "" (weights from a file)

    @property
    def name(self) -> str:
        return f"{PREFIX}{self.arch}:{self.pretrained}" if self.pretrained else PREFIX + self.arch


def parse_spec(spec: str) -> ClipSpec:
    """Check an ``openclip:ARCH[:PRETRAINED]`` spec against open_clip's registry.

    Raises:
        LookalikeError: not an openclip spec, an unknown architecture or tag.
        MissingExtra: open_clip is not installed.
    """
    with needs_extra("clip", f"the CLIP model {spec}"):
        import open_clip

    if not spec.startswith(PREFIX):
        raise LookalikeError(f"{spec!r} is not an open_clip model; use openclip:ARCH:PRETRAINED")
    arch, _, tag = spec[len(PREFIX) :].partition(":")
    if arch not in open_clip.list_models():
        raise LookalikeError(
            f"unknown open_clip architecture {arch!r} in {spec!r}; "
            f"python -c 'import open_clip; print(open_clip.list_models())' lists them"
        )
    if tag and not open_clip.get_pretrained_cfg(arch, tag):
        tags = ", ".join(open_clip.list_pretrained_tags_by_model(arch)) or "none"
        raise LookalikeError(
            f"unknown pretrained tag {tag!r} for open_clip {arch}; its tags: {tags} "
            f"(or leave the tag out and pass --weights FILE)"
        )
    return ClipSpec(arch, tag)


def hf_cache_dir() -> Path:
    """The Hugging Face hub cache, resolved from the environment as huggingface_hub does."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(base) / "huggingface" / "hub"


def hf_location(spec: ClipSpec) -> tuple[str, tuple[str, ...]]:
    """The Hugging Face repo and candidate file names of a pretrained tag."""
    import open_clip

    hub = open_clip.get_pretrained_cfg(spec.arch, spec.pretrained).get("hf_hub", "")
    # open_clip's convention: "org/repo/" means the default file names, "org/repo/file" one file.
    repo, filename = os.path.split(hub)
    if not filename:
        return repo, HF_FILES
    if filename.endswith((".bin", ".pth")):
        return repo, (filename[:-4] + ".safetensors", filename)
    return repo, (filename,)


def cached_checkpoint(spec: ClipSpec) -> Path | None:
    """The tag's checkpoint in the local Hugging Face cache, or None; never downloads."""
    from huggingface_hub import try_to_load_from_cache

    repo, files = hf_location(spec)
    if not repo:
        return None
    for filename in files:
        found = try_to_load_from_cache(repo, filename, cache_dir=hf_cache_dir())
        if isinstance(found, str) and os.path.isfile(found):
            return Path(found)
    return None


def resolve_weights(spec: ClipSpec, weights: str | Path | None) -> Path:
    """The checkpoint file to load: ``weights`` if given, else the tag's file in the HF cache.

    Raises:
        ModelUnavailable: no such file, or nothing in the cache (naming both ways out).
    """
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise ModelUnavailable(f"open_clip weights file not found: {path}")
        return path.absolute()
    if not spec.pretrained:
        raise ModelUnavailable(
            f"{spec.name} names no pretrained tag: pass --weights FILE (an open_clip "
            f"checkpoint) or use openclip:{spec.arch}:TAG with a tag in the Hugging Face cache"
        )
    found = cached_checkpoint(spec)
    if found is None:
        repo, files = hf_location(spec)
        raise ModelUnavailable(
            f"no weights for {spec.name} offline: the Hugging Face cache {hf_cache_dir()} "
            f"has no {repo}/{' or '.join(files)}. Either populate the cache on a connected "
            f"machine (python -c \"import open_clip; open_clip.create_model('{spec.arch}', "
            f"pretrained='{spec.pretrained}')\", then copy its ~/.cache/huggingface/hub here "
            f"or point HF_HOME at it), or pass --weights FILE (a local open_clip checkpoint)"
        )
    return found


def weights_sha256(path: Path) -> str:
    """The file's sha256; free for Hugging Face cache files, whose blob name is it."""
    real = Path(os.path.realpath(path))
    if real.parent.name == "blobs" and _SHA256_BLOB.fullmatch(real.name):
        return real.name
    h = hashlib.sha256()
    with open(real, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@contextmanager
def hub_offline() -> Iterator[None]:
    """Make huggingface_hub (tokenizers, configs) use the local cache only, failing fast."""
    from huggingface_hub import constants

    saved_env = {k: os.environ.get(k) for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    saved_flag = constants.HF_HUB_OFFLINE
    os.environ["HF_HUB_OFFLINE"] = os.environ["TRANSFORMERS_OFFLINE"] = "1"
    constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = saved_flag
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def describe_preprocessing(cfg: dict) -> str:
    """A readable, comparable description of open_clip's preprocessing config."""
    size = cfg["size"]
    if isinstance(size, int) or len(set(size)) == 1:
        side = str(size if isinstance(size, int) else size[0])
    else:
        side = "x".join(str(s) for s in size)

    def fmt(values) -> str:
        return ",".join(f"{float(v):.4f}" for v in values)

    return (
        f"openclip-{cfg.get('resize_mode', 'shortest')}{side}-crop{side}-"
        f"{cfg.get('interpolation', 'bicubic')}-mean{fmt(cfg['mean'])}-std{fmt(cfg['std'])}"
    )


class OpenClipEmbedder:
    """An open_clip model as an Embedder, plus ``embed_text`` for text queries.

    Build it with ``from_spec`` (weights from the HF cache or a file), or hand in a
    model directly (tests use randomly initialised ones). The model and every input
    tensor go to ``device`` ("cpu", "cuda", "cuda:N" or "auto"); vectors come back as
    float32 numpy arrays either way.
    """

    def __init__(self, model, tokenizer, info: ModelInfo, device: str = "cpu") -> None:
        with needs_extra("clip", f"the CLIP model {info.name}"):
            import open_clip
            import torch

        self.device = resolve_device(device)
        self.model = model.eval().to(self.device)
        self.tokenizer = tokenizer
        self.info = info
        cfg = open_clip.get_model_preprocess_cfg(model)
        size = cfg["size"]
        self.size = (size, size) if isinstance(size, int) else tuple(size)  # (height, width)
        self.min_side = max(self.size)
        self._transform = _pil_steps(cfg)
        mean = torch.tensor(cfg["mean"], dtype=torch.float32).view(1, 3, 1, 1) * 255.0
        std = torch.tensor(cfg["std"], dtype=torch.float32).view(1, 3, 1, 1) * 255.0
        self._mean, self._std = mean.to(self.device), std.to(self.device)

    @classmethod
    def from_spec(
        cls,
        spec: str,
        weights: str | Path | None = None,
        threads: int | None = None,
        device: str = "cpu",
    ) -> OpenClipEmbedder:
        """Load ``openclip:ARCH[:PRETRAINED]`` with weights from ``weights`` or the HF cache.

        Args:
            spec: the model spec (see the module docstring).
            weights: a local open_clip checkpoint (state dict, .pt/.bin/.safetensors).
            threads: torch intra-op threads (default: torch's choice).
            device: "cpu" (default), "cuda", "cuda:N" or "auto".

        Raises:
            LookalikeError: a bad spec.
            ModelUnavailable: no weights offline, or a file that is not a checkpoint of ARCH.
            MissingExtra: open_clip or torch is not installed (the clip extra).
            DeviceUnavailable: a CUDA device where torch finds none.
        """
        with needs_extra("clip", f"the CLIP model {spec}"):
            import open_clip
            import torch

        device = resolve_device(device)  # before reading weights: a bad device fails fast
        parsed = parse_spec(spec)
        path = resolve_weights(parsed, weights)
        if threads:
            torch.set_num_threads(threads)
        tag_cfg = (
            open_clip.get_pretrained_cfg(parsed.arch, parsed.pretrained)
            if parsed.pretrained
            else {}
        )
        preprocess = {
            k: tag_cfg[k] for k in ("mean", "std", "interpolation", "resize_mode") if k in tag_cfg
        }
        try:
            with hub_offline():
                model = open_clip.create_model(
                    parsed.arch,
                    pretrained=str(path),
                    force_quick_gelu=bool(tag_cfg.get("quick_gelu", False)),
                    force_preprocess_cfg=preprocess,
                )
                tokenizer = open_clip.get_tokenizer(parsed.arch)
        except Exception as e:  # torch/open_clip raise many types for a foreign file
            first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
            raise ModelUnavailable(
                f"cannot load {path} as open_clip {parsed.arch} weights: {first}"
            ) from e
        cfg = open_clip.get_model_preprocess_cfg(model)
        info = ModelInfo(
            name=parsed.name,
            dim=int(open_clip.get_model_config(parsed.arch)["embed_dim"]),
            preprocessing=describe_preprocessing(cfg),
            weights_hash=weights_sha256(path)[:16],
            descriptor=DESCRIPTOR,
            extra={"weights": str(path)} if weights is not None else {},
            text_encoder=True,
        )
        return cls(model, tokenizer, info, device=device)

    def preprocess(self, image: Image.Image) -> np.ndarray:
        """open_clip's own resize and crop, as a uint8 HWC array (normalised in ``embed``)."""
        return np.asarray(self._transform(image.convert("RGB")), dtype=np.uint8)

    def embed(self, batch: np.ndarray, class_probs: bool = True) -> EmbedOutput:
        """Vectors only: a CLIP model has no class head (``class_probs`` has no effect)."""
        import torch

        batch = np.require(batch, np.uint8, ["C_CONTIGUOUS", "WRITEABLE"])  # torch wants writable
        if batch.ndim != 4 or batch.shape[1:] != (*self.size, 3):
            raise ValueError(
                f"expected a (n, {self.size[0]}, {self.size[1]}, 3) uint8 batch, got {batch.shape}"
            )
        x = torch.from_numpy(batch).to(self.device).permute(0, 3, 1, 2).float()
        x = (x - self._mean) / self._std
        with torch.inference_mode():
            vectors = self.model.encode_image(x)
        return EmbedOutput(l2_normalize(vectors.float().cpu().numpy()), None)

    def embed_text(self, texts: Sequence[str]) -> FeatureVector:
        """Texts to L2-normalised vectors in the image space, shape (len(texts), dim)."""
        import torch

        if not texts:
            return np.zeros((0, self.info.dim), dtype=np.float32)
        tokens = self.tokenizer(list(texts)).to(self.device)
        with torch.inference_mode():
            vectors = self.model.encode_text(tokens)
        return l2_normalize(vectors.float().cpu().numpy())

    def class_names(self) -> None:
        return None

    def in_flight(self) -> AbstractContextManager[None]:
        return nullcontext()  # one query at a time needs no mark: torch uses its own threads

    @property
    def logit_scale(self) -> float:
        """The model's learnt temperature for image-text similarities (about 100 when trained)."""
        return float(self.model.logit_scale.exp().item())


def _pil_steps(cfg: dict):
    """open_clip's eval transform for ``cfg`` without its ToTensor and Normalize steps."""
    from open_clip.transform import MaybeToTensor, PreprocessCfg, ToTensor, image_transform_v2
    from torchvision.transforms import Compose, Normalize

    full = image_transform_v2(PreprocessCfg(**cfg), is_train=False)
    steps = [t for t in full.transforms if not isinstance(t, (MaybeToTensor, ToTensor, Normalize))]
    return Compose(steps)


def label_vectors(
    embedder: TextEmbedder, labels: Sequence[str], templates: Sequence[str] = DEFAULT_TEMPLATES
) -> FeatureVector:
    """One L2-normalised text vector per label: the mean over the prompt templates."""
    if not templates:
        raise ValueError("need at least one template such as 'a photo of a {label}.'")
    prompts = [t.format(label=label) for label in labels for t in templates]
    vectors = embedder.embed_text(prompts).reshape(len(labels), len(templates), -1)
    return l2_normalize(vectors.mean(axis=1))


def zero_shot_scores(
    embedder: TextEmbedder,
    image_vectors: np.ndarray,
    labels: Sequence[str],
    templates: Sequence[str] = DEFAULT_TEMPLATES,
) -> npt.NDArray[np.float32]:
    """Zero-shot label probabilities of images (rows) over ``labels`` (columns).

    Args:
        embedder: the CLIP embedder that produced ``image_vectors``.
        image_vectors: (n, dim) L2-normalised image vectors (for example from the catalog).
        labels: label names; each becomes a prompt through ``templates``.
        templates: prompt templates with a ``{label}`` field, averaged per label.

    Returns:
        (n, len(labels)) float32; each row is a softmax over the labels of the
        model's scaled cosine similarities (rows sum to 1).
    """
    image_vectors = np.atleast_2d(np.asarray(image_vectors, dtype=np.float32))
    if not labels:
        return np.zeros((len(image_vectors), 0), dtype=np.float32)
    text = label_vectors(embedder, labels, templates)
    return softmax(embedder.logit_scale * (image_vectors @ text.T))
