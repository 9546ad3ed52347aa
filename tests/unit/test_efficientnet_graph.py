"""The default model's ONNX graphs (built with onnx.helper, no torch) against the torch
reference model (timm's tf_efficientnet_lite0 with the same weights), and the shipped
ImageNet class names against timm's."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import onnx
import pytest
import torch
from PIL import Image

from lookalike.indexer.models.checkpoint import read_checkpoint
from lookalike.indexer.models.efficientnet import (
    EfficientNetLite0,
    imagenet_names,
    weights_path,
)
from lookalike.indexer.models.efficientnet_arch import HEAD_OUTPUTS, OUTPUTS
from lookalike.indexer.models.efficientnet_graph import build_graphs
from lookalike.indexer.models.efficientnet_torch import build_wrapped_model, pooled_and_features
from tests.support.data import DATA

N_CLASSES = 16  # the first image of each of the first 16 classes of the dev data


@pytest.fixture(scope="module")
def weights() -> dict[str, np.ndarray]:
    return read_checkpoint(weights_path())


@pytest.fixture(scope="module")
def graphs(weights) -> tuple[onnx.ModelProto, onnx.ModelProto]:
    return build_graphs(weights)


def _session(model: onnx.ModelProto):
    """A session made as the embedder makes its own (EfficientNetLite0._make_session)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def _run(backbone, head, batch: np.ndarray) -> dict[str, np.ndarray]:
    pooled, features = backbone.run(OUTPUTS, {"image": batch})
    logits, cam_weights = head.run(HEAD_OUTPUTS, {"pooled": pooled})
    return {"pooled": pooled, "features": features, "logits": logits, "cam_weights": cam_weights}


@pytest.fixture(scope="module")
def batch() -> np.ndarray:
    folders = sorted(p for p in (DATA / "images").iterdir() if p.is_dir())[:N_CLASSES]
    paths = [sorted(folder.glob("*.jpg"))[0] for folder in folders]
    embedder = EfficientNetLite0()
    return np.stack([embedder.preprocess(Image.open(p).convert("RGB")) for p in paths])


@pytest.fixture(scope="module")
def ours(graphs, batch) -> dict[str, np.ndarray]:
    return _run(_session(graphs[0]), _session(graphs[1]), batch)


@pytest.fixture(scope="module")
def reference(batch) -> dict[str, np.ndarray]:
    """The same four outputs from the torch model (not from any export of it)."""
    net = build_wrapped_model(weights_path()).net
    with torch.inference_mode():
        pooled, features = pooled_and_features(net, torch.from_numpy(batch))
        head = net.get_classifier()
        logits = head(pooled)
        cam_weights = torch.softmax(logits, dim=1) @ head.weight
    out = {"pooled": pooled, "features": features, "logits": logits, "cam_weights": cam_weights}
    return {k: v.numpy() for k, v in out.items()}


def test_graphs_match_the_torch_model(ours, reference):
    """Same vectors, same classes, same CAMs (measured: min cosine 0.999999881, largest
    differences 4e-5 on the features and 1e-5 on the logits; -s prints them)."""

    def unit(v):
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    cosines = np.sum(unit(ours["pooled"]) * unit(reference["pooled"]), axis=1)
    diff = {k: float(np.abs(ours[k] - reference[k]).max()) for k in ours}
    print(
        f"\nmin cosine {cosines.min():.9f}; "
        + ", ".join(f"max |d {k}| {d:.3g}" for k, d in diff.items())
    )
    for k in ours:
        assert ours[k].shape == reference[k].shape and ours[k].dtype == np.float32, k
    assert len(cosines) == N_CLASSES and cosines.min() >= 0.99999
    assert np.array_equal(ours["logits"].argmax(1), reference["logits"].argmax(1))
    assert diff["features"] <= 1e-3 and diff["logits"] <= 1e-3 and diff["cam_weights"] <= 1e-5


def test_graph_interface(graphs):
    backbone, head = graphs
    for model, inputs, outputs in (
        (
            backbone,
            {"image": ["n", 224, 224, 3]},
            {"pooled": ["n", 1280], "features": ["n", 1280, 7, 7]},
        ),
        (head, {"pooled": ["n", 1280]}, {"logits": ["n", 1000], "cam_weights": ["n", 1280]}),
    ):
        assert model.opset_import[0].version == 17
        for values, expected in ((model.graph.input, inputs), (model.graph.output, outputs)):
            dims = {
                v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
                for v in values
            }
            assert dims == expected
    assert backbone.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8


def test_a_batch_of_one_gives_the_same_rows(graphs, batch, ours):
    one = _run(_session(graphs[0]), _session(graphs[1]), batch[3:4])
    np.testing.assert_allclose(one["pooled"], ours["pooled"][3:4], atol=1e-4)


def test_weights_that_do_not_fit_are_named(weights):
    items = list(weights.items())
    with pytest.raises(ValueError, match="has 296"):
        build_graphs(dict(items + [("extra", np.zeros(1, np.float32))]))
    with pytest.raises(ValueError, match="end after 295"):
        build_graphs(dict(items[:-1]))
    name, array = items[6]  # blocks.0.0.conv_dw.weight
    bad = dict(items)
    bad[name] = array[:, :, :2]
    with pytest.raises(ValueError, match=rf"tensor {name} .*blocks\.0\.0\.conv_dw\.weight"):
        build_graphs(bad)


def test_the_graphs_build_and_run_without_torch(tmp_path):
    """The default path: read, build, cache and embed with torch and timm unimportable;
    once cached, without onnx either."""
    code = (
        "import sys; sys.modules['torch'] = sys.modules['timm'] = None\n"
        "import numpy as np\n"
        "from lookalike.indexer.models.registry import load_embedder\n"
        "model = load_embedder('efficientnet-lite0')\n"
        "out = model.embed(np.zeros((1, 224, 224, 3), np.uint8))\n"
        "assert out.vectors.shape == (1, 1280) and model.class_names()[0] == 'tench'\n"
        "loaded = {m.split('.')[0] for m, v in sys.modules.items() if v is not None}\n"
        "assert not loaded & {'torch', 'timm'}, loaded & {'torch', 'timm'}\n"
    )
    env = dict(os.environ, LOOKALIKE_CACHE=str(tmp_path))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.suffix for p in (tmp_path / "onnx").iterdir()) == [".onnx", ".onnx"]
    # With the graphs cached, a run does not even import onnx (seconds of start-up).
    cached = code + "assert 'onnx' not in sys.modules\n"
    proc = subprocess.run([sys.executable, "-c", cached], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr


def test_shipped_imagenet_names_are_timms():
    """The names file (package data) was written from timm's ImageNetInfo: still equal."""
    from timm.data import ImageNetInfo

    info = ImageNetInfo()
    timms = [info.index_to_description(i).split(",")[0] for i in range(info.num_classes())]
    assert imagenet_names() == timms and len(timms) == 1000
