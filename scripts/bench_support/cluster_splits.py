"""The long-tailed cluster protocol of issue 17: random class splits of a library of the
long-tailed dev data, optional Zipf subsampling, and the figures judged on each split.

A split: 10 classes never labelled, every other class gets ``labels`` human labels (at
most its size minus one), everything else -- the rest of the labelled classes, the
never-labelled classes and the distractors -- is to be clustered. With ``zipf``, each
class is first subsampled to ``1000 * rank ** -1.35`` images (5 to 1,000; a class keeps
all it has when it has fewer), ranks drawn at random per split.

Scored over the unlabelled images (noise points and distractors as singletons): ARI; the
noise share; the never-labelled classes found (a cluster holding >= 50% of the class at
>= 0.8 purity); and the fragmentation: classes with >= 100 unlabelled images cut into
more than 2 clusters holding >= 10% of the class each.
"""

from __future__ import annotations

from collections import Counter
from typing import NamedTuple

import numpy as np
from sklearn.metrics import adjusted_rand_score

NOVEL = 10
DISTRACTOR = "distractors"


class Split(NamedTuple):
    keep: np.ndarray  # positions (into the library's rows) of the images in the split
    labelled: dict[int, str]  # position -> human label
    novel: set[str]  # the classes never labelled


def zipf_sizes(classes: list[str], rng: np.random.Generator, exponent: float = 1.35):
    """Target size per class: 1000 / rank ** exponent, 5 at least, ranks at random."""
    ranks = rng.permutation(len(classes)) + 1
    sizes = np.maximum(5, np.round(1000 * ranks.astype(float) ** -exponent)).astype(int)
    return dict(zip(classes, sizes.tolist(), strict=True))


def make_split(truth: np.ndarray, seed: int, labels: int, zipf: bool) -> Split:
    """One random split of rows whose classes are ``truth`` (see the module docstring)."""
    rng = np.random.default_rng(seed)
    classes = sorted(set(truth.tolist()) - {DISTRACTOR})
    order = [str(c) for c in rng.permutation(classes)]
    novel = set(order[:NOVEL])
    target = zipf_sizes(classes, rng) if zipf else {}
    keep = [np.flatnonzero(truth == DISTRACTOR)]
    for c in classes:
        rows = np.flatnonzero(truth == c)
        if c in target and target[c] < len(rows):
            rows = np.sort(rng.choice(rows, target[c], replace=False))
        keep.append(rows)
    kept = np.sort(np.concatenate(keep))
    labelled: dict[int, str] = {}
    for c in order[NOVEL:]:
        rows = kept[truth[kept] == c]
        for r in rng.choice(rows, min(labels, len(rows) - 1), replace=False):
            labelled[int(r)] = c
    return Split(kept, labelled, novel)


def score(groups: list[list[str]], noise: list[str], class_of, novel: set[str]) -> dict:
    """The figures of one clustering (groups and noise as paths; ``class_of(path)``)."""
    paths = [p for g in groups for p in g] + list(noise)
    pred = [k for k, g in enumerate(groups) for _p in g]
    pred += list(range(len(groups), len(groups) + len(noise)))
    truth = [class_of(p) for p in paths]
    flat = [t if t != DISTRACTOR else f"{DISTRACTOR} {k}" for k, t in enumerate(truth)]
    per_group = [Counter(class_of(p) for p in g) for g in groups]
    total = Counter(truth)
    found = 0
    for c in novel:
        if any(n[c] >= 0.5 * total[c] and n[c] >= 0.8 * sum(n.values()) for n in per_group):
            found += 1
    fragmented = [
        c
        for c, n in total.items()
        if c != DISTRACTOR and n >= 100 and sum(g[c] >= 0.1 * n for g in per_group) > 2
    ]
    return {
        "ari": float(adjusted_rand_score(flat, pred)),
        "noise": len(noise) / max(len(paths), 1),
        "novel_found": found,
        "novel": len(novel),
        "fragmented": len(fragmented),
        "large": sum(1 for c, n in total.items() if c != DISTRACTOR and n >= 100),
        "clusters": len(groups),
    }


def line(name: str, r: dict, seconds: float | None = None) -> str:
    """One printed row of figures."""
    out = (
        f"  {name:22s} ARI {r['ari']:.3f}  noise {r['noise']:5.1%}  novel found "
        f"{r['novel_found']:2d}/{r['novel']}  large classes in > 2 pieces "
        f"{r['fragmented']}/{r['large']}  {r['clusters']:3d} clusters"
    )
    return out + (f"  {seconds:5.1f}s" if seconds is not None else "")


def worst_and_mean(rows: list[dict]) -> str:
    """Worst and mean over the splits (worst: lowest ARI and found, highest noise)."""
    ari = [r["ari"] for r in rows]
    found = [r["novel_found"] for r in rows]
    noise = [r["noise"] for r in rows]
    frag = [r["fragmented"] for r in rows]
    return (
        f"ARI worst {min(ari):.3f} mean {np.mean(ari):.3f}; novel found worst {min(found)} "
        f"mean {np.mean(found):.1f}; noise worst {max(noise):.1%} mean {np.mean(noise):.1%}; "
        f"large classes in > 2 pieces worst {max(frag)} mean {np.mean(frag):.1f}"
    )


def confusion(groups: list[list[str]], kinds: list[str], noise: list[str], class_of) -> list[str]:
    """Per true class not held whole by one proposal, where its images went: the largest
    pieces as ``count@proposal-kind`` (the label a "label" proposal joins, or "new"),
    and how many are noise; then each proposal mixing classes (its second class holding
    >= 20%). ``kinds``: per group, its label or "new"."""
    total = Counter(class_of(p) for g in groups for p in g) + Counter(class_of(p) for p in noise)
    noisy = Counter(class_of(p) for p in noise)
    per_group = [Counter(class_of(p) for p in g) for g in groups]
    out = []
    for c, n in total.most_common():
        if c == DISTRACTOR:
            continue
        pieces = sorted(((g[c], k) for k, g in enumerate(per_group) if g[c]), reverse=True)
        if len(pieces) == 1 and not noisy[c]:
            continue
        where = " ".join(f"{m}@{k}:{kinds[k]}" for m, k in pieces[:5])
        out.append(f"    {c} ({n}): {where}{'' if len(pieces) <= 5 else ' ...'} noise {noisy[c]}")
    for k, g in enumerate(per_group):
        top = g.most_common(2)
        if len(top) == 2 and top[1][1] >= 0.2 * sum(g.values()):
            (a, na), (b, nb) = top
            out.append(f"    proposal {k}:{kinds[k]} mixes {a} {na}, {b} {nb}")
    return out


def ari_losses(groups: list[list[str]], noise: list[str], class_of, min_size: int = 5) -> dict:
    """Where ARI is lost: the ARI gained by repairing one kind of mistake at a time (an
    oracle, each kind alone against the clustering as it is), and per class by repairing
    that class alone (all its images in one group of their own).

    A class's *main* group is the proposal holding most of it. Kinds: ``strays`` -- its
    images outside the main group in pieces of fewer than ``min_size`` of it, or noise,
    moved into the main group; ``pieces`` -- its pieces of ``min_size`` or more outside the
    main group, moved in; ``merged`` -- a main group shared with a larger class, its images
    taken out into a group of their own; ``distractors`` -- distractors inside proposals
    made noise."""
    truth = [class_of(p) for g in groups for p in g] + [class_of(p) for p in noise]
    pred = np.array([k for k, g in enumerate(groups) for _p in g] + [-1] * len(noise))
    truth_arr = np.array(truth)
    base = _ari(truth_arr, pred)
    classes = sorted(set(truth) - {DISTRACTOR})
    main = {}
    for c in classes:
        got = Counter(pred[(truth_arr == c) & (pred >= 0)].tolist())
        main[c] = got.most_common(1)[0][0] if got else -1
    owner = {}
    for c in sorted(classes, key=lambda c: -int(np.sum((truth_arr == c) & (pred == main[c])))):
        owner.setdefault(main[c], c)
    fixes = {kind: pred.copy() for kind in ("strays", "pieces", "merged", "distractors")}
    fresh = len(groups)
    for c in classes:
        mine = truth_arr == c
        count = Counter(pred[mine].tolist())
        for g, n in count.items():
            if g == main[c] or main[c] < 0:
                continue
            kind = "strays" if g < 0 or n < min_size else "pieces"
            fixes[kind][mine & (pred == g)] = main[c]
        if main[c] >= 0 and owner[main[c]] != c:
            fixes["merged"][mine & (pred == main[c])] = fresh
            fresh += 1
    fixes["distractors"][(truth_arr == DISTRACTOR) & (pred >= 0)] = -1
    gains = {kind: _ari(truth_arr, fixed) - base for kind, fixed in fixes.items()}
    per_class = {}
    for c in classes:
        fixed = pred.copy()
        fixed[truth_arr == c] = fresh
        per_class[c] = _ari(truth_arr, fixed) - base
    return {"ari": base, "gains": gains, "per_class": per_class}


def _ari(truth: np.ndarray, pred: np.ndarray) -> float:
    """ARI with noise (-1) and distractors as singletons, as :func:`score` counts them."""
    flat = [t if t != DISTRACTOR else f"{DISTRACTOR} {k}" for k, t in enumerate(truth.tolist())]
    single = pred.copy()
    lone = np.flatnonzero(single < 0)
    single[lone] = pred.max() + 1 + np.arange(len(lone))
    return float(adjusted_rand_score(flat, single))


def loss_lines(losses: dict, top: int = 6) -> list[str]:
    """The printed breakdown of :func:`ari_losses`."""
    kinds = ", ".join(f"{k} +{v:.3f}" for k, v in losses["gains"].items())
    worst = sorted(losses["per_class"].items(), key=lambda kv: -kv[1])[:top]
    classes = ", ".join(f"{c} +{v:.3f}" for c, v in worst)
    return [
        f"    ARI lost, by kind (oracle repair of each alone): {kinds}",
        f"    ARI lost, by class (repairing that class alone): {classes}",
    ]
