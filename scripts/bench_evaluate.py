"""Benchmark: `lookalike evaluate`'s validation of the four heads on the dev images.

The dev data's images/ (2,013 images, 51 classes) labelled by folder, the distractors
unlabelled, from the library the bench cache holds (indexed once). Printed per head:

- the time of the whole validation (5-fold cross-validation, learning curve, open-set
  rounds with their calibration), as `lookalike evaluate` runs it, and its accuracy;
- the reference, measured in the same run on the same folds: the 5 cross-validation
  fits of the scikit-learn models the heads used before (LogisticRegression C=10,
  LinearSVC C=1, MLPClassifier 256 units, 100 epochs on the full 1,280-d vectors)
  against the same 5 fits of today's heads: time, accuracy and the ratio.

The CLI's own time (`lookalike evaluate --json`, all heads, start-up included) is printed
too: wall seconds and CPU seconds (its process and its children, the worker process that
runs half of the heads included), the best of ``--repeat`` runs. With ``--reference
CHECKOUT`` (another checkout with its own .venv, e.g. /work/main) that checkout's CLI is
timed the same way on the same labelled library, the runs alternating, and the ratios
printed.

Usage:
    python scripts/bench_evaluate.py [--heads knn,linear,svm,mlp] [--no-reference]
        [--reference CHECKOUT] [--repeat N] [--cli-only] [--json]
"""

from __future__ import annotations

import csv
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from bench_support.cli import cli
from bench_support.data import class_of, dev_library, library_vectors
from bench_support.figures import emit, parser
from lookalike.classifier.tagging.tagger import HEADS, make_head, prepare, single_threaded_blas
from lookalike.classifier.tagging.validation import assign_folds, evaluate_vectors


def old_model(name: str):
    """The scikit-learn model the head used before (the reference)."""
    from sklearn.linear_model import LogisticRegression  # scikit-learn: the reference only
    from sklearn.neural_network import MLPClassifier
    from sklearn.svm import LinearSVC

    if name == "linear":
        return LogisticRegression(C=10.0, max_iter=1000)
    if name == "svm":
        return LinearSVC(C=1.0, random_state=0)
    return MLPClassifier(
        hidden_layer_sizes=(256,), alpha=1e-3, learning_rate_init=3e-3, max_iter=100
    )


def cross_validation(fit_predict, x, seeds, y, fold, folds) -> tuple[float, float]:
    """(seconds, accuracy) of the 5 fits and predictions of a cross-validation."""
    right = 0
    start = time.perf_counter()
    for f in range(folds):
        test = fold == f
        pred = fit_predict(seeds[~test], y[~test], seeds[test])
        right += int((pred == y[test]).sum())
    return time.perf_counter() - start, right / int((fold >= 0).sum())


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--heads", default=",".join(HEADS))
    p.add_argument("--no-reference", action="store_true")
    p.add_argument("--reference", type=Path, help="another checkout whose CLI to time too")
    p.add_argument("--repeat", type=int, default=1, help="CLI runs of each checkout")
    p.add_argument("--cli-only", action="store_true", help="only the CLI's times")
    args = p.parse_args()
    heads = args.heads.split(",")
    library = dev_library()
    paths, vectors = library_vectors(library)
    seeds = np.array([i for i, q in enumerate(paths) if class_of(q) != "distractors"])
    names = [class_of(paths[i]) for i in seeds]
    print(f"{len(seeds)} labelled images of {len(set(names))} classes, {len(paths)} in all")
    figures: dict = {}
    if not args.cli_only:
        for name in heads:
            result = evaluate_vectors(vectors, seeds, names, heads=[name])
            h = result.heads[name]
            figures[name] = {
                "seconds": h.seconds,
                "cpu_seconds": h.cpu_seconds,
                "accuracy": round(h.accuracy, 4),
            }
            print(
                f"{name:7s} whole validation {h.seconds:6.1f} s (CPU {h.cpu_seconds:5.1f} s)  "
                f"accuracy {h.accuracy:.3f}"
            )
        total = sum(f["seconds"] for f in figures.values())
        print(f"all heads, one after the other: {total:.1f} s")
        if not args.no_reference:
            reference(vectors, seeds, names, [h for h in heads if h != "knn"], figures)
    figures["cli"] = cli_evaluate(
        library, [paths[i] for i in seeds], names, args.reference, args.repeat
    )
    emit(args, figures)


def cli_evaluate(
    library: Path, paths: list[str], names: list[str], other: Path | None, repeat: int
) -> dict:
    """Wall and CPU seconds of `lookalike evaluate --json` (all heads) on a labelled copy
    of the library: this checkout's CLI, and ``other``'s when given, alternating."""
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "library"
        shutil.copytree(library, copy)
        labels = Path(tmp) / "labels.csv"
        with labels.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["path", "label"])
            writer.writerows(zip(paths, names, strict=True))
        cli("labels", "import", str(labels), library=copy)
        pythons = {"this checkout": sys.executable}
        if other is not None:
            pythons["reference " + str(other)] = str(other / ".venv/bin/python")
        runs: dict[str, list[tuple[float, float]]] = {name: [] for name in pythons}
        for _ in range(repeat):
            for name, python in pythons.items():
                runs[name].append(
                    timed_run(python, copy, cwd=other if "reference" in name else None)
                )
    out = {}
    for name, times in runs.items():
        wall, cpu = min(t[0] for t in times), min(t[1] for t in times)
        out[name] = {"wall_s": round(wall, 1), "cpu_s": round(cpu, 1)}
        print(
            f"lookalike evaluate, {name} (all heads, 5 folds, start-up included): "
            f"{wall:.1f} s wall, {cpu:.1f} s CPU (best of {len(times)})"
        )
    if other is not None:
        mine, ref = out["this checkout"], out[f"reference {other}"]
        out["wall_ratio"] = round(ref["wall_s"] / mine["wall_s"], 2)
        out["cpu_ratio"] = round(ref["cpu_s"] / mine["cpu_s"], 2)
        print(
            f"reference / this checkout: {out['wall_ratio']}x wall, {out['cpu_ratio']}x CPU "
            f"(load average now {os.getloadavg()[0]:.1f})"
        )
    return out


def timed_run(python: str, library: Path, cwd: Path | None) -> tuple[float, float]:
    """(wall, CPU) seconds of one `python -m lookalike evaluate --json`, its children's
    CPU (the worker processes) included."""
    env = dict(os.environ, LOOKALIKE_LIBRARY=str(library))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(
        [python, "-m", "lookalike", "evaluate", "--json"],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        sys.exit(f"{python} -m lookalike evaluate failed:\n{proc.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def reference(vectors, seeds, names, heads, figures) -> None:
    _, y = np.unique(names, return_inverse=True)
    fold, _ = assign_folds(y, 5, np.random.default_rng(0))
    x = prepare(vectors)
    print("cross-validation fits (5 folds), today's heads against the scikit-learn ones:")
    for name in heads:
        head = make_head(name, x)

        def new(train, ty, test, head=head):
            head.fit(train, ty)
            return head.score(test).pred

        def old(train, ty, test, name=name):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return old_model(name).fit(x[train], ty).predict(x[test])

        with single_threaded_blas():
            t_new, a_new = cross_validation(new, x, seeds, y, fold, 5)
            t_old, a_old = cross_validation(old, x, seeds, y, fold, 5)
        figures[name] |= {"cv_seconds": round(t_new, 2), "reference_cv_seconds": round(t_old, 2)}
        print(
            f"{name:7s} {t_new:6.2f} s (accuracy {a_new:.3f})  reference {t_old:6.2f} s "
            f"(accuracy {a_old:.3f})  {t_old / t_new:5.1f}x faster"
        )


if __name__ == "__main__":
    main()
