"""Object localisation: class-activation map -> bounding box."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from lookalike.indexer.errors import BadQuery
from lookalike.indexer.images import load_image
from lookalike.indexer.models.protocol import ModelInfo
from lookalike.indexer.models.registry import load_embedder
from lookalike.search.localize import LocalizeOptions, box_from_activation, localize
from tests.support.data import dev_images


def peak_map(cells: list[tuple[int, int]], value: float = 5.0) -> np.ndarray:
    cam = np.full((7, 7), -1.0, dtype=np.float32)
    for row, col in cells:
        cam[row, col] = value
    return cam


def iou(a, b) -> float:
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union


def test_a_peak_in_the_top_left_gives_a_top_left_box():
    x0, y0, x1, y1 = box_from_activation(peak_map([(0, 0), (0, 1), (1, 0), (1, 1)]), (700, 350))
    assert x0 == 0 and y0 == 0
    assert 150 <= x1 <= 330 and 75 <= y1 <= 165  # two cells of 100 x 50 pixels, plus blur


def test_the_region_around_the_strongest_peak_wins():
    cam = peak_map([(5, 5), (5, 6), (6, 5), (6, 6)], 3.0)
    cam[0, 0] = 4.0  # a stronger isolated spot elsewhere
    x0, y0, x1, y1 = box_from_activation(cam, (700, 700), LocalizeOptions(threshold=0.5))
    assert x1 <= 250 and y1 <= 250  # the strongest spot, not the bigger region


def test_no_positive_evidence_means_no_box():
    assert box_from_activation(np.full((7, 7), -2.0, np.float32), (300, 200)) is None
    assert box_from_activation(np.zeros((7, 7), np.float32), (300, 200)) is None


@pytest.mark.parametrize("size", [(1, 1), (3, 500), (640, 480), (5000, 20)])
def test_boxes_are_inside_the_image_and_never_empty(size):
    for cells in ([(3, 3)], [(0, 6)], [(6, 0), (6, 1)]):
        x0, y0, x1, y1 = box_from_activation(peak_map(cells), size)
        assert 0 <= x0 < x1 <= size[0] and 0 <= y0 < y1 <= size[1]


def test_a_tiny_box_is_widened_to_the_minimum_size():
    options = LocalizeOptions(threshold=0.99, margin=0.0, min_side=0.25)
    x0, y0, x1, y1 = box_from_activation(peak_map([(3, 3)]), (800, 400), options)
    assert x1 - x0 >= 199 and y1 - y0 >= 99


class NoHead:
    info = ModelInfo("openclip:ViT-B-32:none", 512, "clip", "")


def test_a_model_without_a_classifier_cannot_localise():
    with pytest.raises(BadQuery, match="--box"):
        localize(NoHead(), Image.new("RGB", (64, 64)))


@pytest.fixture(scope="module")
def model():
    return load_embedder("efficientnet-lite0")


def test_the_real_model_finds_an_object_pasted_on_a_plain_background(model):
    """Each object photo pasted into a larger plain canvas: the box finds it."""
    rng = np.random.default_rng(0)
    scores, whole = [], []
    for path in dev_images(classes=6, per_class=1):
        obj = load_image(path).image
        obj.thumbnail((280, 280))  # about half the canvas width: CAM cells are 80 px here
        canvas = Image.new("RGB", (560, 420), (235, 235, 230))
        x = int(rng.integers(0, 560 - obj.size[0]))
        y = int(rng.integers(0, 420 - obj.size[1]))
        canvas.paste(obj, (x, y))
        found = localize(model, canvas)
        assert found.found and found.activation.shape == (7, 7)
        scores.append(iou(found.box, (x, y, x + obj.size[0], y + obj.size[1])))
        whole.append(iou((0, 0, 560, 420), (x, y, x + obj.size[0], y + obj.size[1])))
    assert np.mean(scores) >= 0.4, scores
    assert all(s > w for s, w in zip(scores, whole, strict=True)), (scores, whole)


def test_onnx_and_torch_maps_agree(model):
    torch_model = load_embedder("efficientnet-lite0:torch")
    images = [load_image(p, min_side=256).image for p in dev_images(2, 1)]
    batch = np.stack([model.preprocess(im) for im in images])
    ours, ref = model.class_activation(batch), torch_model.class_activation(batch)
    assert ours.shape == (2, 7, 7)
    assert np.allclose(ours, ref, rtol=1e-3, atol=1e-3 * np.abs(ref).max())
