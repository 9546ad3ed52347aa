"""Duplicates that are duplicates: pair recall and other pairs of `lookalike duplicates`.

The protocol of issue 18 on dev data: a library of the long-tailed dev images and
their distractors (``long_tailed_library()``, indexed once into the bench cache; or
``--library``), copied to a temporary folder, plus two-edit copies of ``--copies``
library photos (two of crop, rotation, rescale, grayscale, colour change, mirror;
then JPEG quality 30-70), indexed into it with the real CLI. Ground truth: the
(copy, original) pairs. Every pair inside a reported group counts as reported;
"other pairs" are reported pairs outside the ground truth (the dev data holds genuine
duplicates among its photos, so a perfect tool reports some: ``--show`` prints a
sample to look at); "with a copy" counts those that hold one of the generated copies
(the rest are pairs of the library's own photos).

Per seed (other sources, other edits) it prints, for the verified grouping (the
default) and, in the same run, the semantic grouping (``--look-alikes``, the
reference): pair recall, other pairs, groups, largest group and seconds of the pass
after indexing (wall clock, and CPU seconds of the process: the machine is shared);
for the verified one also a second, incremental pass (nothing new to verify) and the
candidate stage's own recall (with and without the perceptual hashes); with
``--reference``, the verified pass as it was before the hashes (20 vector candidates;
the small-image candidates of all_candidates included), on a copy of the library.
With ``--pdq`` (needs ``pip install pdqhash``, Facebook's PDQ perceptual hash; not a
dependency of Lookalike), a peer reference in the same run: every image's PDQ hash, the
pairs within ``--pdq-distance`` bits (31 of 256, PDQ's usual match threshold), grouped
by connected components: a stand-in for the issue's peer, immaculate's "pdq" method,
which does not install here (its settings may differ).
Its "other pairs" on the dev photos alone (no generated copy) count the library's own
duplicates a hash sees, against which the verified pass's can be read.
Sources have no near-duplicate in the library (see bench_support.edits.pick_sources),
so "the original" is unambiguous. Last, the kinds the copies grouped with their own
original were given (identical, re-encoded, resized, cropped, edited) against the kind
their edits call for (expected_kind), and how many groups with a copy and its original
keep the original (not a copy) first.

    python scripts/bench_duplicates.py [--copies 300] [--seeds 3] [--strength strong]
        [--library DIR] [--neighbours 10] [--show 20] [--reference] [--pdq] [--json]
"""

from __future__ import annotations

import io
import itertools
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from bench_support.cli import cli
from bench_support.data import long_tailed_library
from bench_support.edits import EDITS, STRENGTHS, pick_sources, use_strength
from bench_support.figures import emit, parser
from lookalike.indexer.images import load_image
from lookalike.search.copy_groups import CANDIDATES, all_candidates
from lookalike.search.duplicates import UnionFind
from lookalike.search.searcher import Searcher

KINDS = ("crop", "rotate", "resize", "grayscale", "colour", "mirror")
PAIRS = list(itertools.combinations(KINDS, 2))
REFERENCE_NEIGHBOURS = 20  # the vector candidates per image before the hashes came


def two_edit_copy(path: str, rng: np.random.Generator) -> tuple[str, bytes]:
    """Two edits out of KINDS, then JPEG quality 30-70."""
    img = load_image(path).image
    pair = PAIRS[int(rng.integers(len(PAIRS)))]
    for name in rng.permutation(pair).tolist():
        img = EDITS[name](img, rng)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=int(rng.integers(30, 71)))
    return "+".join(sorted(pair)), buf.getvalue()


def build(base: Path, work: Path, n: int, seed: int):
    """A copy of ``base`` with ``n`` edited copies indexed in; ground truth pairs."""
    root = work / f"library-{seed}"
    shutil.copytree(base, root, ignore=shutil.ignore_patterns("*-wal", "*-shm", ".lock"))
    rng = np.random.default_rng(seed)
    sources, _ = pick_sources(root, n, rng)
    folder = work / f"copies-{seed}"
    folder.mkdir()
    edits = {}
    for number, (image_id, path) in enumerate(sources):
        kind, data = two_edit_copy(path, rng)
        name = folder / f"copy-{number:04d}.jpg"
        name.write_bytes(data)
        edits[str(name)] = (image_id, kind)
    indexing = cli("index", str(folder), "-q", library=root).seconds
    with Searcher.open(root) as searcher:
        ids = searcher.library.catalog.ids_of_paths(edits)
    truth = {(min(ids[p], src), max(ids[p], src)): kind for p, (src, kind) in edits.items()}
    return root, truth, indexing


def reported(groups: list[list[int]]) -> set[tuple[int, int]]:
    return {(min(a, b), max(a, b)) for g in groups for a, b in itertools.combinations(g, 2)}


def score(groups: list[list[int]], truth: dict, seconds: float) -> dict:
    pairs = reported(groups)
    found = [p in pairs for p in truth]
    copies = {max(p) for p in truth}  # the copies are indexed after the library's images
    others = pairs - set(truth)
    by_edit: dict[str, list[bool]] = {}
    for p, kind in truth.items():
        by_edit.setdefault(kind, []).append(p in pairs)
    return {
        "recall": float(np.mean(found)),
        "other_pairs": len(others),
        # the rest are pairs of the library's own photos: mostly its genuine duplicates
        "other_pairs_with_a_copy": sum(bool(copies.intersection(p)) for p in others),
        "groups": len(groups),
        "largest": max((len(g) for g in groups), default=0),
        "seconds": seconds,
        "recall_by_edit": {k: float(np.mean(v)) for k, v in sorted(by_edit.items())},
    }


CHANGES = {"rotate", "grayscale", "colour", "mirror"}  # edits that make a copy "edited"


def expected_kind(edits: str) -> str:
    """The kind (search/copy_groups.py: match_kind) a copy made with ``edits`` should get
    against its original: edited (turned, mirrored, recoloured), else cropped, else
    resized."""
    done = set(edits.split("+"))
    return "edited" if done & CHANGES else "cropped" if "crop" in done else "resized"


def kinds_told(groups, truth: dict) -> dict[str, dict[str, int]]:
    """For the copies found in the group of their own original (its best image): the
    kind each got, counted by the kind expected from its edits."""
    told: dict[str, dict[str, int]] = {}
    for g in groups:
        best, kind_of = g.members[0].id, {m.id: m.kind for m in g.members}
        for m in g.members[1:]:
            edits = truth.get((min(best, m.id), max(best, m.id)))
            if edits is not None:
                row = told.setdefault(expected_kind(edits), {})
                row[kind_of[m.id]] = row.get(kind_of[m.id], 0) + 1
    return told


def originals_kept(groups, truth: dict) -> tuple[int, int]:
    """(kept, of): of the groups holding a copy and its own original, those whose image
    to keep (the first member) is not a generated copy."""
    copies = {max(p) for p in truth}
    kept = of = 0
    for g in groups:
        ids = set(g.ids)
        if any(a in ids and b in ids for a, b in truth):
            of += 1
            kept += g.members[0].id not in copies
    return kept, of


def pdq_groups(paths: dict[int, str], distance: int) -> tuple[list[list[int]], float]:
    """PDQ hashes of every image (decoded whole, as PDQ expects), pairs within
    ``distance`` bits, connected components; and the seconds it took (CPU, this
    process: pdqhash is single-threaded)."""
    import pdqhash  # optional: the peer reference only

    c0 = time.process_time()
    ids, bits = [], []
    for image_id, path in paths.items():
        try:
            rgb = np.asarray(load_image(path).image.convert("RGB"))
        except Exception:  # an image the library could not index either
            continue
        ids.append(image_id)
        bits.append(np.packbits(pdqhash.compute(rgb)[0].astype(np.uint8)))
    codes = np.stack(bits)
    popcount = np.unpackbits(np.arange(256, dtype=np.uint8)[:, None], axis=1).sum(1)
    components = UnionFind()
    for i in range(len(ids) - 1):
        d = popcount[np.bitwise_xor(codes[i + 1 :], codes[i])].sum(1)
        for j in np.flatnonzero(d <= distance) + i + 1:
            components.union(ids[i], ids[int(j)])
    return components.groups(), time.process_time() - c0


def measure(
    root: Path, truth: dict, show: int, neighbours: int, reference: bool, pdq: int | None = None
) -> dict:
    """The verified pass (twice), the semantic one and, with ``reference``, the verified
    pass before the perceptual hashes (REFERENCE_NEIGHBOURS vector candidates, no
    hashes) on a copy of the library with nothing verified yet."""
    out = {}
    if reference:
        old = root.with_name(root.name + "-reference")
        shutil.copytree(root, old, ignore=shutil.ignore_patterns("*-wal", "*-shm", ".lock"))
        with Searcher.open(old) as searcher:
            t0, c0 = time.perf_counter(), time.process_time()
            before = searcher.copy_groups(neighbours=REFERENCE_NEIGHBOURS, hashes=False)
            t1, c1 = time.perf_counter(), time.process_time()
        out["reference"] = score([g.ids for g in before.groups], truth, t1 - t0) | {
            "cpu_seconds": c1 - c0,
            "verified_pairs": before.verified,
        }
        shutil.rmtree(old)
    with Searcher.open(root) as searcher:
        t0 = time.perf_counter()
        semantic = [g.ids for g in searcher.duplicates()]
        t1, c1 = time.perf_counter(), time.process_time()
        first = searcher.copy_groups(neighbours=neighbours)
        t2, c2 = time.perf_counter(), time.process_time()
        again = searcher.copy_groups(neighbours=neighbours)
        t3 = time.perf_counter()
        index = searcher.library.live_index()
        rows = searcher.library.catalog.images(index.ids().tolist())
        cands = all_candidates(index, rows, neighbours=neighbours)
        plain = all_candidates(index, rows, neighbours=neighbours, hashes=False)
        paths = searcher.library.catalog.paths(i for g in first.groups for i in g.ids)
    verified = score([g.ids for g in first.groups], truth, t2 - t1)
    verified |= {
        "cpu_seconds": c2 - c1,
        "incremental_seconds": t3 - t2,
        "verified_pairs": first.verified,
        "reverified_pairs": again.verified,
        "candidate_recall": float(np.mean([p in cands for p in truth])),
        "candidate_recall_vectors_only": float(np.mean([p in plain for p in truth])),
        "candidate_pairs": len(cands),
        "kinds": kinds_told(first.groups, truth),
        "originals_kept": originals_kept(first.groups, truth),
    }
    others = sorted(reported([g.ids for g in first.groups]) - set(truth))
    for a, b in others[:show]:
        print(f"    other pair: {paths[a]}  {paths[b]}")
    if pdq is not None:
        with Searcher.open(root) as searcher:
            every = searcher.library.catalog.paths(searcher.library.live_index().ids().tolist())
        groups, seconds = pdq_groups(every, pdq)
        out["pdq"] = score(groups, truth, seconds)
    return out | {"verified": verified, "look_alikes": score(semantic, truth, t1 - t0)}


def line(name: str, r: dict) -> str:
    return (
        f"  {name:12s} recall {r['recall']:.3f}  other pairs {r['other_pairs']:6d} "
        f"({r['other_pairs_with_a_copy']:4d} with a copy)  "
        f"groups {r['groups']:4d}  largest {r['largest']:4d}  {r['seconds']:6.1f} s"
    )


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--library", type=Path, help="the base library (default: long-tailed dev)")
    ap.add_argument("--copies", type=int, default=300)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--strength", choices=sorted(STRENGTHS), default="strong")
    ap.add_argument("--neighbours", type=int, default=CANDIDATES, help="candidates per image")
    ap.add_argument("--show", type=int, default=0, help="print this many other pairs per seed")
    ap.add_argument(
        "--reference",
        action="store_true",
        help="also run the pass before the hashes (20 vector candidates) in the same run",
    )
    ap.add_argument(
        "--pdq",
        action="store_true",
        help="also group by PDQ hashes (pip install pdqhash), a peer reference, same run",
    )
    ap.add_argument("--pdq-distance", type=int, default=31, help="PDQ match threshold, bits")
    args = ap.parse_args()
    use_strength(args.strength)
    base = args.library or long_tailed_library()
    runs = []
    with tempfile.TemporaryDirectory(prefix="bench-duplicates-") as tmp:
        for seed in range(args.seeds):
            root, truth, indexing = build(base, Path(tmp), args.copies, seed)
            with Searcher.open(root) as searcher:
                images = searcher.library.catalog.count()
            print(f"seed {seed}: {images} images ({len(truth)} copies indexed in {indexing:.0f} s)")
            pdq = args.pdq_distance if args.pdq else None
            r = measure(root, truth, args.show, args.neighbours, args.reference, pdq)
            v = r["verified"]
            print(line("verified", v))
            if "reference" in r:
                ref = r["reference"]
                print(
                    line("before", ref)
                    + f"  (reference: 20 candidates, no hashes; {ref['cpu_seconds']:.0f} CPU s,"
                    f" CPU ratio now/before {v['cpu_seconds'] / ref['cpu_seconds']:.2f})"
                )
            print(line("look-alikes", r["look_alikes"]) + "  (reference, same run)")
            if "pdq" in r:
                print(
                    line(f"PDQ <= {args.pdq_distance}", r["pdq"])
                    + "  (peer reference, same run: CPU s, hashing included)"
                )
            print(
                f"  verified: candidate recall {v['candidate_recall']:.3f} "
                f"({v['candidate_recall_vectors_only']:.3f} without the hashes), "
                f"{v['verified_pairs']} pairs verified ({v['cpu_seconds']:.0f} CPU s, "
                f"{v['cpu_seconds'] / images * 1000:.1f} CPU ms per image), "
                f"second pass {v['incremental_seconds']:.1f} s "
                f"({v['reverified_pairs']} re-verified); by edit: "
                + ", ".join(f"{k} {x:.2f}" for k, x in v["recall_by_edit"].items())
            )
            right = sum(row.get(k, 0) for k, row in v["kinds"].items())
            told = sum(sum(row.values()) for row in v["kinds"].values())
            print(
                f"  kinds of the copies grouped with their original: {right} of {told} as their "
                "edits say; expected -> got: "
                + "; ".join(
                    f"{k} -> " + ", ".join(f"{g} {n}" for g, n in sorted(row.items()))
                    for k, row in sorted(v["kinds"].items())
                )
            )
            kept, of = v["originals_kept"]
            print(f"  image to keep: the original in {kept} of {of} groups with a copy and it")
            runs.append(r | {"images": images})
            shutil.rmtree(root)
    mean = {
        mode: {
            k: float(np.mean([run[mode][k] for run in runs]))
            for k in ("recall", "other_pairs", "largest", "seconds")
            + (("cpu_seconds",) if mode == "verified" else ())
        }
        for mode in ("verified", "look_alikes")
    }
    v, s = mean["verified"], mean["look_alikes"]
    per_image = v["cpu_seconds"] / np.mean([run["images"] for run in runs])
    print(
        f"mean over {len(runs)} seeds: verified recall {v['recall']:.3f}, other pairs "
        f"{v['other_pairs']:.0f}, largest {v['largest']:.0f}, {v['seconds']:.1f} s; "
        f"look-alikes recall {s['recall']:.3f}, other pairs {s['other_pairs']:.0f} "
        f"(recall ratio {v['recall'] / max(s['recall'], 1e-9):.2f}); "
        f"{per_image * 1000:.1f} CPU ms per image: 1M images ~{per_image * 1e6 / 3600:.1f} "
        "CPU hours (divide by the cores)"
    )
    emit(args, {"mean": mean, "runs": runs})


if __name__ == "__main__":
    main()
