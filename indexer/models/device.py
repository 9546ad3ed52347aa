"""Where a model runs: "cpu" (ONNX Runtime, no torch), "cuda"/"cuda:N" (torch), or "auto"."""

from __future__ import annotations

from lookalike.indexer.errors import LookalikeError, ModelUnavailable, needs_extra

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


def resolve_device(device: str | None = "cpu") -> str:
    """The device a model runs on: "cpu", "cuda" or "cuda:N".

    "cpu" (the default) never imports torch. "auto" is "cuda" when torch sees a CUDA
    GPU, else "cpu" (and "cpu" without torch installed: no torch, no GPU to use).

    Raises:
        LookalikeError: not one of auto, cpu, cuda, cuda:N.
        MissingExtra: a CUDA device asked for without torch (the gpu extra).
        DeviceUnavailable: a CUDA device asked for where torch finds none.
    """
    name = (device or "cpu").strip().lower()
    if name == "cpu":
        return "cpu"
    kind, colon, index = name.partition(":")
    if kind not in ("auto", "cuda") or (colon and (kind == "auto" or not index.isdigit())):
        raise LookalikeError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N")
    if kind == "auto":
        try:
            import torch  # optional and heavy: only a GPU run needs it
        except ModuleNotFoundError as e:
            if e.name != "torch":
                raise
            return "cpu"
    else:
        with needs_extra("gpu", f"--device {name}"):
            import torch  # optional and heavy: only a GPU run needs it

    available = torch.cuda.is_available()
    if kind == "auto":
        return "cuda" if available else "cpu"
    if not available:
        built = f"built for CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
        raise DeviceUnavailable(name, f"torch {torch.__version__} ({built}) finds no CUDA GPU")
    if index and int(index) >= torch.cuda.device_count():
        raise DeviceUnavailable(name, f"torch finds {torch.cuda.device_count()} CUDA GPU(s)")
    return name
