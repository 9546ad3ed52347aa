"""An evaluation's heads on several cores: one group in this process, each other group in
a worker process of its own (a fresh interpreter, so a threaded web server is never
forked, and its CPU time counts as this process's children's).

Processes, not threads: the heads run small BLAS calls between lines of Python that
hold the GIL, and two heads in two threads took longer than one after the other
(measured on the dev images: svm + mlp 18.9 s in sequence, 28.8 s in two threads).
The vectors go to the workers as a memory-mapped temporary ``.npy`` file (no copy
through a pipe, whatever the library's size); a worker sends its progress and its
results back, pickled, on its stdout.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

R = TypeVar("R")
# report(item, text): progress of one item of a group.
Report = Callable[[str, str], None]
# task(vectors, items, report) -> {item: result}; picklable (a module-level function or
# a functools.partial of one), as are its results.
Task = Callable[[np.ndarray, Sequence[str], Report], dict[str, R]]

MAX_WORKERS = 2  # the five heads split into two about equal halves; mlp alone is a third


class WorkerLost(RuntimeError):
    """A worker process ended without sending its results (killed, out of memory)."""


def default_workers() -> int:
    """Processes to use: the cores this process may run on, at most ``MAX_WORKERS``."""
    affinity = getattr(os, "sched_getaffinity", None)  # Linux; elsewhere, the core count
    cores = len(affinity(0)) if affinity else (os.cpu_count() or 1)
    return max(1, min(cores, MAX_WORKERS))


def split(items: Sequence[str], cost: Callable[[str], float], groups: int) -> list[list[str]]:
    """``items`` in at most ``groups`` groups of about equal cost (the costliest first, each
    into the group with the least so far); each group keeps the items' order."""
    bins: list[list[str]] = [[] for _ in range(max(1, groups))]
    load = [0.0] * len(bins)
    for item in sorted(items, key=cost, reverse=True):
        i = load.index(min(load))
        bins[i].append(item)
        load[i] += cost(item)
    order = {item: k for k, item in enumerate(items)}
    return [sorted(b, key=order.__getitem__) for b in bins if b]


def run_groups(
    task: Task[R], vectors: np.ndarray, groups: list[list[str]], report: Report
) -> dict[str, R]:
    """``task`` over each group, the first here, the others in worker processes at once.

    ``report`` is called from this thread (the first group) and from one thread per
    worker (its progress), so it must be thread-safe. An error in any group is raised
    here, the workers stopped.
    """
    if len(groups) <= 1:
        return task(vectors, groups[0] if groups else [], report)
    with tempfile.TemporaryDirectory(prefix="lookalike-heads-") as tmp:
        path = Path(tmp) / "vectors.npy"
        np.save(path, np.ascontiguousarray(vectors))
        workers = [_Worker(task, str(path), g, report) for g in groups[1:]]
        try:
            here = task(vectors, groups[0], report)
        except BaseException:
            for w in workers:
                w.stop()
            raise
        finally:
            for w in workers:
                w.join()
    results: dict[str, R] = {}
    for w in workers:
        results |= w.result()
    return here | results


class _Worker:
    """One group in a child process (``serve``): the task goes in on its stdin, pickled
    progress messages and the results come back on its stdout."""

    def __init__(self, task: Task, path: str, items: Sequence[str], report: Report) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from lookalike.classifier.tagging.head_pool import serve; serve()",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert self.proc.stdin is not None
        with self.proc.stdin:
            pickle.dump((task, path, list(items)), self.proc.stdin)
        self._report = report
        self._outcome: tuple[str, Any] | None = None
        self._thread = threading.Thread(target=self._drain, daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        assert self.proc.stdout is not None
        with self.proc.stdout as stream:
            while True:
                try:
                    kind, payload = pickle.load(stream)
                except EOFError:
                    return
                if kind == "progress":
                    self._report(*payload)
                else:
                    self._outcome = (kind, payload)

    def stop(self) -> None:
        self.proc.kill()

    def join(self) -> None:
        self._thread.join()
        self.proc.wait()

    def result(self) -> dict:
        if self._outcome is None:
            raise WorkerLost(
                f"an evaluation worker process ended without its results "
                f"(exit status {self.proc.returncode})"
            )
        kind, payload = self._outcome
        if kind == "error":
            raise payload
        return payload


def serve() -> None:
    """A worker process's main: run the task read from stdin, answer on stdout."""
    out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # stray prints go to stderr
    task, path, items = pickle.load(sys.stdin.buffer)
    vectors = np.load(path, mmap_mode="r")

    def report(item: str, text: str) -> None:
        pickle.dump(("progress", (item, text)), out)
        out.flush()

    try:
        result: tuple[str, Any] = ("done", task(vectors, items, report))
    except Exception as e:  # sent to the parent, which raises it
        result = ("error", _picklable(e))
    with out:
        pickle.dump(result, out)


def _picklable(e: BaseException) -> BaseException:
    try:
        pickle.loads(pickle.dumps(e))
    except Exception:
        return RuntimeError(f"{type(e).__name__}: {e}")
    return e
