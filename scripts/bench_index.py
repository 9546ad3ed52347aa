"""Indexing throughput: `lookalike index` against a hand-written reference pipeline.

Both run as whole processes, alternating, on the same files:
  (a) N images of the dev data (default 600);
  (b) 60 twelve-megapixel JPEGs made by upscaling dev images, a third of them stored
      sideways with EXIF orientation 6.
The reference is the plain way to do it: PIL full decode, torchvision
Resize(256)/CenterCrop(224)/ToTensor/Normalize, batches of 32, the same torch model
(eager), a flat FAISS index. Prints images/s of each and the ratio (median of runs).
``--copy-detection`` also runs `lookalike index --copy-detection` (the SSCD descriptor
too) on each set, alternating with the plain run, and prints its images/s and the
ratio against `lookalike index` without it.

    python scripts/bench_index.py [--images 600] [--big 60] [--repeats 2] [--copy-detection]
        [--json]
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

from bench_support.cli import cli
from bench_support.data import check_data
from bench_support.figures import emit, parser

REFERENCE = r"""
import sys, time
from pathlib import Path
import faiss, numpy as np, torch
from PIL import Image, ImageOps
from torchvision import transforms
from lookalike.indexer.models.efficientnet import weights_path
from lookalike.indexer.models.efficientnet_torch import build_torch_model
files = [p for p in sorted(Path(sys.argv[1]).rglob("*")) if p.suffix.lower() in (".jpg", ".jpeg")]
model = build_torch_model(weights_path())
tf = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor(),
                         transforms.Normalize([0.5] * 3, [0.5] * 3)])
index = faiss.IndexFlatIP(1280)
with torch.inference_mode():
    for i in range(0, len(files), 32):
        imgs = [tf(ImageOps.exif_transpose(Image.open(f)).convert("RGB")) for f in files[i:i + 32]]
        feats = model.forward_head(model.forward_features(torch.stack(imgs)), pre_logits=True)
        feats = torch.nn.functional.normalize(feats, dim=1).numpy()
        index.add(np.ascontiguousarray(feats, dtype=np.float32))
assert index.ntotal == len(files)
"""


def make_big_jpegs(out: Path, count: int) -> None:
    sources = sorted((check_data() / "images").rglob("*.jpg"))[:: max(1, 2000 // count)][:count]
    out.mkdir(parents=True)
    for i, src in enumerate(sources):
        img = Image.open(src).convert("RGB").resize((4000, 3000), Image.BICUBIC)
        if i % 3 == 0:
            exif = Image.Exif()
            exif[0x0112] = 6  # stored sideways; viewers rotate it upright
            img.transpose(Image.ROTATE_90).save(out / f"big{i:03d}.jpg", quality=90, exif=exif)
        else:
            img.save(out / f"big{i:03d}.jpg", quality=90)


def link_dev_images(out: Path, count: int) -> None:
    files = sorted((check_data() / "images").rglob("*.jpg"))
    step = max(1, len(files) // count)
    out.mkdir(parents=True)
    for i, src in enumerate(files[::step][:count]):
        os.symlink(src, out / f"{i:04d}-{src.parent.name}-{src.name}")


def run_ours(folder: Path, work: Path, *extra: str) -> float:
    library = work / f"lib-{time.monotonic_ns()}"
    seconds = cli("index", str(folder), "-q", *extra, library=library).seconds
    shutil.rmtree(library)
    return seconds


def run_reference(folder: Path) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", REFERENCE, str(folder)], check=True, capture_output=True)
    return time.perf_counter() - start


def measure(
    name: str, folder: Path, count: int, work: Path, repeats: int, copies: bool = False
) -> dict:
    ours, ref, with_copies = [], [], []
    for _ in range(repeats):  # alternate, so drift hits both alike
        ours.append(count / run_ours(folder, work))
        ref.append(count / run_reference(folder))
        if copies:
            with_copies.append(count / run_ours(folder, work, "--copy-detection"))
    # Ratios of the unrounded medians: a small run's rates round to 0.0 at one decimal.
    ours_rate, ref_rate = statistics.median(ours), statistics.median(ref)
    row = {
        "set": name,
        "images": count,
        "ours_images_per_s": round(ours_rate, 1),
        "reference_images_per_s": round(ref_rate, 1),
        "ratio": round(ours_rate / ref_rate, 2),
    }
    if copies:
        copies_rate = statistics.median(with_copies)
        row["copies_images_per_s"] = round(copies_rate, 1)
        row["copies_ratio"] = round(copies_rate / ours_rate, 2)
    return row


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--images", type=int, default=600)
    ap.add_argument("--big", type=int, default=60)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument(
        "--copy-detection", action="store_true", help="also index with copy descriptors"
    )
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-index-") as tmp:
        work = Path(tmp)
        link_dev_images(work / "dev", args.images)
        make_big_jpegs(work / "big", args.big)
        run_ours(work / "dev", work)  # warm-up: ONNX export cache, page cache
        rows = [
            measure("dev", work / "dev", args.images, work, args.repeats, args.copy_detection),
            measure("12MP", work / "big", args.big, work, args.repeats, args.copy_detection),
        ]
    for r in rows:
        print(
            f"{r['set']:>5}: {r['images']} images  lookalike {r['ours_images_per_s']:7.1f} img/s"
            f"  reference {r['reference_images_per_s']:6.1f} img/s  ratio {r['ratio']:.2f}x"
        )
        if "copies_images_per_s" in r:
            print(
                f"{'':>5}  with --copy-detection {r['copies_images_per_s']:7.1f} img/s"
                f"  ({r['copies_ratio']:.2f}x lookalike index without it)"
            )
    emit(args, rows)


if __name__ == "__main__":
    main()
