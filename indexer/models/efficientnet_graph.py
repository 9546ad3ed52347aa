"""EfficientNet-Lite0's two ONNX graphs, built from numpy weights (no torch, no timm).

The backbone takes a uint8 NHWC (n, 224, 224, 3) crop, normalises it itself and gives
``pooled`` (n, 1280) and ``features`` (n, 1280, 7, 7); the head takes ``pooled`` and
gives ``logits`` (n, 1000) and ``cam_weights`` (n, 1280). ``efficientnet`` caches
both files and runs them on ONNX Runtime; ``efficientnet_torch`` is the torch
reference they are tested against (cosine >= 0.99999, the same top class).

The architecture is timm's ``tf_efficientnet_lite0`` written out (the model is fixed;
a general EfficientNet builder would be more code to trust). The weights are taken by
position in timm's state-dict order, which is also the packaged checkpoint's order
under other names. What a torch export leaves for ONNX Runtime to work out is done
here: batch norms are folded into the convolutions, TF "same" paddings (asymmetric at
stride 2) are constant ``pads``, and ReLU6 is a Clip with constant bounds (ONNX
Runtime fuses it into the convolution only then).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from lookalike.indexer.models.efficientnet_arch import (
    ARCH,
    CLASSES,
    CROP,
    DIM,
    HEAD_OUTPUTS,
    MEAN,
    OUTPUTS,
    STD,
)

STEM = 32  # the stem convolution's channels
BN_EPS = 1e-3  # timm's tf_* models use TF's batch-norm epsilon, not torch's 1e-5
OPSET, IR_VERSION = 17, 8  # IR 8 is opset 17's: older ONNX Runtimes still load it
# (x / 255 - mean) / std with mean = std = 0.5 is (x - 127.5) / 127.5: the subtraction
# is exact in float32 and the division is folded into the stem's weights (see build_graphs).
CENTRE, SCALE = 255.0 * MEAN, 1.0 / (255.0 * STD)

# (block kind, repeats, kernel, first stride, expansion, out channels), as timm's
# arch_def for efficientnet_lite0: ds_r1_k3_s1_e1_c16, ir_r2_k3_s2_e6_c24, ...
STAGES: tuple[tuple[str, int, int, int, int, int], ...] = (
    ("ds", 1, 3, 1, 1, 16),
    ("ir", 2, 3, 2, 6, 24),
    ("ir", 2, 5, 2, 6, 40),
    ("ir", 3, 3, 2, 6, 80),
    ("ir", 3, 5, 1, 6, 112),
    ("ir", 4, 5, 2, 6, 192),
    ("ir", 1, 3, 1, 6, 320),
)


class _Weights:
    """The checkpoint's tensors handed out in order, each checked against the shape the
    architecture expects there, so a wrong file fails by name instead of computing junk."""

    def __init__(self, weights: dict[str, np.ndarray]) -> None:
        self._items: Iterator[tuple[str, np.ndarray]] = iter(weights.items())
        self._count = len(weights)
        self.taken = 0

    def take(self, expected_name: str, shape: tuple[int, ...]) -> np.ndarray:
        item = next(self._items, None)
        if item is None:
            raise ValueError(
                f"the weights end after {self.taken} tensors; {expected_name} {shape} expected"
            )
        name, array = item
        self.taken += 1
        array = np.asarray(array)
        if array.shape != shape:
            raise ValueError(
                f"tensor {name} (#{self.taken}) has shape {array.shape}; "
                f"{expected_name} needs {shape}"
            )
        if not np.issubdtype(array.dtype, np.floating if shape else np.number):
            raise ValueError(f"tensor {name} (#{self.taken}) is {array.dtype}, not a number type")
        return array

    def batch_norm(self, prefix: str, channels: int) -> tuple[np.ndarray, np.ndarray]:
        """(scale, shift) of an eval-mode batch norm, in float64 until folded."""
        gamma, beta, mean, var = (
            self.take(f"{prefix}.{part}", (channels,)).astype(np.float64)
            for part in ("weight", "bias", "running_mean", "running_var")
        )
        self.take(f"{prefix}.num_batches_tracked", ())  # a training counter: unused
        scale = gamma / np.sqrt(var + BN_EPS)
        return scale, beta - mean * scale

    def finish(self) -> None:
        if self.taken != self._count:
            extra = next(self._items)[0]
            raise ValueError(
                f"{self._count} tensors given, tf_efficientnet_lite0 has {self.taken}; "
                f"the first extra one is {extra}"
            )


@dataclass
class _Graph:
    """Nodes and initializers being collected for one graph."""

    nodes: list[onnx.NodeProto] = field(default_factory=list)
    inits: list[onnx.TensorProto] = field(default_factory=list)

    def const(self, name: str, array: np.ndarray) -> str:
        self.inits.append(numpy_helper.from_array(array, name))
        return name

    def node(self, op: str, inputs: list[str], output: str, **attrs) -> str:
        self.nodes.append(helper.make_node(op, inputs, [output], name=output, **attrs))
        return output


def same_pads(side: int, kernel: int, stride: int) -> tuple[int, int]:
    """TF "same" padding (before, after) of one spatial axis: the extra pixel goes after,
    as timm's ``pad_same`` does (at stride 1 it is symmetric, (k - 1) / 2 each side)."""
    out = -(-side // stride)
    total = max((out - 1) * stride + kernel - side, 0)
    return total // 2, total - total // 2


@dataclass
class _Builder:
    """Walks the architecture, taking weights and emitting folded Conv (+ Clip) nodes."""

    weights: _Weights
    graph: _Graph = field(default_factory=_Graph)
    side: int = CROP

    def conv_bn(
        self,
        x: str,
        name: str,
        bn: str,
        cin: int,
        cout: int,
        kernel: int = 1,
        stride: int = 1,
        depthwise: bool = False,
        relu6: bool = True,
        out: str | None = None,
        input_scale: float = 1.0,
    ) -> str:
        """Conv + batch norm (+ ReLU6) as one Conv with the norm folded in, and a Clip."""
        shape = (cout, 1 if depthwise else cin, kernel, kernel)
        w = self.weights.take(f"{name}.weight", shape).astype(np.float64) * input_scale
        scale, shift = self.weights.batch_norm(bn, cout)
        before, after = same_pads(self.side, kernel, stride)
        self.side = -(-self.side // stride)
        g = self.graph
        y = g.node(
            "Conv",
            [
                x,
                g.const(f"{name}.weight", (w * scale[:, None, None, None]).astype(np.float32)),
                g.const(f"{name}.bias", shift.astype(np.float32)),
            ],
            f"{name}.out",
            kernel_shape=[kernel, kernel],
            strides=[stride, stride],
            dilations=[1, 1],
            pads=[before, before, after, after],
            group=cout if depthwise else 1,
        )
        if not relu6:
            return y
        return g.node("Clip", [y, "relu6.min", "relu6.max"], out or f"{bn}.relu6")

    def block(
        self,
        x: str,
        prefix: str,
        kind: str,
        cin: int,
        cout: int,
        kernel: int,
        stride: int,
        expand: int,
    ) -> str:
        """timm's DepthwiseSeparableConv ("ds") or InvertedResidual ("ir"), no SE (lite)."""
        y = x
        mid = cin * expand
        if kind == "ir":
            y = self.conv_bn(y, f"{prefix}.conv_pw", f"{prefix}.bn1", cin, mid)
        dw_bn, pw, pw_bn = ("bn1", "conv_pw", "bn2") if kind == "ds" else ("bn2", "conv_pwl", "bn3")
        y = self.conv_bn(
            y, f"{prefix}.conv_dw", f"{prefix}.{dw_bn}", mid, mid, kernel, stride, depthwise=True
        )
        y = self.conv_bn(y, f"{prefix}.{pw}", f"{prefix}.{pw_bn}", mid, cout, relu6=False)
        if stride == 1 and cin == cout:  # timm's has_skip (drop_path is identity in eval)
            y = self.graph.node("Add", [y, x], f"{prefix}.add")
        return y

    def backbone(self, x: str, input_scale: float = 1.0) -> str:
        """Stem, the seven stages and the head conv: the final (n, 1280, 7, 7) map."""
        y = self.conv_bn(x, "conv_stem", "bn1", 3, STEM, 3, 2, input_scale=input_scale)
        cin = STEM
        for s, (kind, repeats, kernel, stride, expand, cout) in enumerate(STAGES):
            for i in range(repeats):
                y = self.block(
                    y, f"blocks.{s}.{i}", kind, cin, cout, kernel, stride if i == 0 else 1, expand
                )
                cin = cout
        return self.conv_bn(y, "conv_head", "bn2", cin, DIM, out="features")


def _model(graph: _Graph, name: str, inputs, outputs) -> onnx.ModelProto:
    """A checked opset-17 model whose batch axis is the symbolic ``n``."""
    model = helper.make_model(
        helper.make_graph(graph.nodes, name, inputs, outputs, graph.inits),
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="lookalike",
    )
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model, full_check=True)
    return model


def _tensor(name: str, elem: int, *dims: int) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem, ["n", *dims])


def build_graphs(weights: dict[str, np.ndarray]) -> tuple[onnx.ModelProto, onnx.ModelProto]:
    """(backbone, head) ONNX models of tf_efficientnet_lite0 with ``weights``: its
    tensors in timm's state-dict order (names are not read; the packaged checkpoint's
    differ). Raises ``ValueError`` naming the first tensor that does not fit."""
    w = _Weights(weights)
    builder = _Builder(w)
    g = builder.graph
    g.const("relu6.min", np.array(0.0, np.float32))
    g.const("relu6.max", np.array(6.0, np.float32))
    # Transpose the bytes (a quarter of the floats' traffic), then widen and centre. The
    # 1/127.5 goes into the stem conv: a zero there is still a zero (the padding stays
    # right) and one pass over the image is saved (Mul was ~1% of the profiled time).
    x = g.node("Transpose", ["image"], "image.nchw", perm=[0, 3, 1, 2])
    x = g.node("Cast", [x], "image.float", to=TensorProto.FLOAT)
    x = g.node("Sub", [x, g.const("norm.centre", np.array(CENTRE, np.float32))], "image.centred")
    features = builder.backbone(x, input_scale=SCALE)
    pooled = g.node("GlobalAveragePool", [features], "pooled.4d")
    g.node("Flatten", [pooled], "pooled", axis=1)
    classifier = w.take("classifier.weight", (CLASSES, DIM)).astype(np.float32)
    bias = w.take("classifier.bias", (CLASSES,)).astype(np.float32)
    w.finish()
    backbone = _model(
        g,
        ARCH,
        [_tensor("image", TensorProto.UINT8, CROP, CROP, 3)],
        [
            _tensor(OUTPUTS[0], TensorProto.FLOAT, DIM),
            _tensor(OUTPUTS[1], TensorProto.FLOAT, DIM, builder.side, builder.side),
        ],
    )
    return backbone, build_head(classifier, bias)


def build_head(classifier: np.ndarray, bias: np.ndarray) -> onnx.ModelProto:
    """The ImageNet head: logits, and the CAM weights softmax(logits) @ W (one weight
    vector per image; the CAM is then a 1x1 "conv" of the feature map)."""
    g = _Graph()
    w = g.const("classifier.weight", classifier)
    g.node("Gemm", ["pooled", w, g.const("classifier.bias", bias)], "logits", transB=1)
    probs = g.node("Softmax", ["logits"], "probs", axis=1)
    g.node("MatMul", [probs, w], "cam_weights")
    return _model(
        g,
        f"{ARCH}_head",
        [_tensor("pooled", TensorProto.FLOAT, DIM)],
        [
            _tensor(HEAD_OUTPUTS[0], TensorProto.FLOAT, CLASSES),
            _tensor(HEAD_OUTPUTS[1], TensorProto.FLOAT, DIM),
        ],
    )
