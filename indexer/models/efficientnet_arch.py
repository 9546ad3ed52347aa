"""The default model's fixed facts: architecture, input, outputs.

Shared by the embedder (``efficientnet``), the ONNX graph builder
(``efficientnet_graph``) and the torch reference (``efficientnet_torch``), in a module
of its own so that none of them has to import another, nor its packages: the builder
needs onnx (1-2 s to import, and only once a cache is empty), the reference torch.
"""

from __future__ import annotations

ARCH = "tf_efficientnet_lite0"  # timm's name for the architecture
CROP = 224  # the input side (a centre crop)
DIM, CLASSES = 1280, 1000  # DIM: the pooled features, i.e. the embedding
MEAN, STD = 0.5, 0.5  # the normalisation of x / 255 the weights were trained with
OUTPUTS = ["pooled", "features"]  # the backbone graph's outputs
HEAD_OUTPUTS = ["logits", "cam_weights"]  # the head graph's
