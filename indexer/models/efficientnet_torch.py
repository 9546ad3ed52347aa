"""The default model in torch: timm's ``tf_efficientnet_lite0`` with the packaged weights.

What runs on a CUDA GPU (``EfficientNetLite0(device="cuda")``, or the
``efficientnet-lite0:torch`` spec on the CPU), and the reference the ONNX graphs of
``efficientnet_graph`` are tested against. It needs torch and timm (the ``gpu``
extra): only a torch run imports this module, so the default CPU path never loads
them.
"""

from __future__ import annotations

from pathlib import Path

import timm
import torch
from timm.models.efficientnet import EfficientNet

from lookalike.indexer.errors import ModelUnavailable
from lookalike.indexer.models.efficientnet_arch import ARCH, MEAN, STD


def build_torch_model(weights: Path) -> EfficientNet:
    """The timm model with the checkpoint at ``weights`` (the packaged file), in eval mode.

    Raises:
        ModelUnavailable: the file's tensors do not fit timm's architecture.
    """
    state = torch.load(weights, map_location="cpu", weights_only=True)
    model = timm.create_model(ARCH, pretrained=False)
    assert isinstance(model, EfficientNet)  # what timm builds for ARCH
    target = model.state_dict()
    if len(state) != len(target):
        raise ModelUnavailable(f"{weights}: {len(state)} tensors, timm's {ARCH} has {len(target)}")
    renamed = {}  # the packaged file names its tensors otherwise, in timm's order
    for (src_name, tensor), (dst_name, dst) in zip(state.items(), target.items(), strict=True):
        if tuple(tensor.shape) != tuple(dst.shape):
            raise ModelUnavailable(f"{weights}: tensor {src_name} does not fit {dst_name}")
        renamed[dst_name] = tensor
    model.load_state_dict(renamed)
    return model.eval()


def pooled_and_features(net: EfficientNet, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The timm network on a uint8 NHWC batch: (pooled features, final feature map)."""
    x = x.permute(0, 3, 1, 2).float() * (1.0 / (255.0 * STD)) - MEAN / STD
    features = net.forward_features(x)
    return net.forward_head(features, pre_logits=True), features


class Wrapped(torch.nn.Module):
    """uint8 NHWC in; (L2-normalised pooled features, ImageNet logits, CAM) out: what
    the two ONNX graphs give together, normalised and weighted as the embedder does."""

    def __init__(self, net: EfficientNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        pooled, features = pooled_and_features(self.net, x)
        head = self.net.get_classifier()
        logits = head(pooled)
        norm = pooled / pooled.norm(dim=1, keepdim=True).clamp_min(1e-12)
        # sum_c p_c * (w_c . F(y, x)): one weight vector per image, then a 1x1 "conv".
        weights = torch.softmax(logits, dim=1) @ head.weight
        cam = torch.einsum("nk,nkhw->nhw", weights, features)
        return norm, logits, cam


def build_wrapped_model(weights: Path) -> Wrapped:
    """The reference model of ``weights`` behind the embedder's interface (see Wrapped)."""
    return Wrapped(build_torch_model(weights)).eval()
