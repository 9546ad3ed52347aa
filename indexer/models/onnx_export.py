"""Exporting the default model to ONNX (see indexer/models/efficientnet.py): two graphs.

The backbone (uint8 NHWC crop in; pooled features and the final 7x7 feature map out),
with timm's TF-"same" padding made constant for the fixed crop size, and the ImageNet
head (pooled features in; logits and CAM weights out) beside it. Both are written
aside and renamed into place; the backbone last, so a present backbone means a
present head.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)


def build_backbone(model: torch.nn.Module) -> torch.nn.Module:
    """The exported part of a wrapped model: uint8 NHWC in; (pooled, 7x7 features) out."""
    import torch

    class Backbone(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x):
            from lookalike.indexer.models.efficientnet import pooled_and_features

            return pooled_and_features(self.net, x)

    return Backbone(model.net).eval()


def static_same_padding(model: torch.nn.Module, side: int) -> torch.nn.Module:
    """``model`` with timm's TF-"same" convolutions padded by constants for ``side`` inputs.

    timm pads those convolutions at run time from the input's shape, which the ONNX
    export records as ~100 shape, cast and arithmetic nodes plus Pad nodes that break
    ONNX Runtime's blocked-layout convolutions into reorders: 12% of the CPU time of
    an image (measured, the same outputs to the last bit). The graph's input is
    always a ``side`` x ``side`` crop, so every padding is a constant.
    """
    import torch
    from timm.layers.conv2d_same import Conv2dSame
    from timm.layers.padding import pad_same_arg

    sizes: dict[str, tuple[int, int]] = {}
    hooks = [
        module.register_forward_pre_hook(
            lambda _m, args, name=name: sizes.__setitem__(name, tuple(args[0].shape[-2:]))
        )
        for name, module in model.named_modules()
        if isinstance(module, Conv2dSame)
    ]
    with torch.no_grad():
        model(torch.zeros(1, side, side, 3, dtype=torch.uint8))
    for hook in hooks:
        hook.remove()
    for name, (h, w) in sizes.items():
        same = model.get_submodule(name)
        assert isinstance(same, Conv2dSame)  # the hooks above were put on these only
        (kh, kw), (sh, sw), (dh, dw) = same.kernel_size, same.stride, same.dilation
        left, right, top, bottom = pad_same_arg([h, w], [kh, kw], [sh, sw], [dh, dw])
        conv = torch.nn.Conv2d(
            same.in_channels, same.out_channels, (kh, kw), (sh, sw), 0,
            (dh, dw), same.groups, same.bias is not None,
        )  # fmt: skip
        conv.load_state_dict(same.state_dict())
        if (left, top) == (right, bottom):
            conv.padding = (top, left)
            replacement: torch.nn.Module = conv
        else:  # ONNX Runtime folds a constant Pad into the Conv that follows it
            replacement = torch.nn.Sequential(torch.nn.ZeroPad2d((left, right, top, bottom)), conv)
        parent, _, attr = name.rpartition(".")
        setattr(model.get_submodule(parent), attr, replacement)
    return model


def head_path(onnx_path: Path) -> Path:
    """Where the ImageNet head graph of an exported backbone is kept."""
    return onnx_path.with_name(onnx_path.stem + "-head.onnx")


def build_head(classifier: torch.nn.Module) -> torch.nn.Module:
    """The ImageNet head (timm's classifier layer): pooled features in; (logits, CAM
    weights) out."""
    import torch

    class Head(torch.nn.Module):
        def __init__(self, linear):
            super().__init__()
            self.linear = linear

        def forward(self, pooled):
            logits = self.linear(pooled)
            # sum_c p_c * w_c: the CAM's one weight vector per image (see the docstring).
            return logits, torch.softmax(logits, dim=1) @ self.linear.weight

    return Head(classifier).eval()


def export_onnx(path: Path) -> None:
    """Export the backbone to ``path`` and its head beside it, each written aside and
    renamed into place (the graph last: a present graph means a present head)."""
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    from lookalike.indexer.models.efficientnet import (
        CROP,
        DIM,
        HEAD_OUTPUTS,
        OUTPUTS,
        build_wrapped_model,
    )

    log.info("exporting the default model to ONNX at %s (once)", path)
    wrapped = build_wrapped_model()
    head = build_head(wrapped.net.get_classifier())
    _export(head, torch.zeros(2, DIM), "pooled", HEAD_OUTPUTS, head_path(path))
    backbone = static_same_padding(build_backbone(wrapped), CROP)
    _export(backbone, torch.zeros(2, CROP, CROP, 3, dtype=torch.uint8), "image", OUTPUTS, path)


def _export(model, example, input_name: str, outputs: list[str], path: Path) -> None:
    """One graph with a dynamic batch axis, written aside and renamed into place."""
    import torch

    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        torch.onnx.export(
            model,
            (example,),
            str(tmp),
            input_names=[input_name],
            output_names=outputs,
            dynamic_axes={input_name: {0: "n"}, **{name: {0: "n"} for name in outputs}},
            opset_version=17,
            dynamo=False,
        )
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
