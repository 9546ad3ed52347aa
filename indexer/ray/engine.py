"""Indexing on Ray Data: the same incremental indexing, with the work spread over a cluster.

Stages (Ray Data jobs: the same code on a laptop and on a cluster):

1. listing: one task per top-level folder of each root walks its folder tree;
2. planning (driver): the batch indexer's own plan against the catalog;
3. decode: tasks read, hash, decode and preprocess the planned files; content the
   catalog already holds (moved, copied or touched files) is not decoded;
4. embed: an actor pool, one model per actor (one GPU per actor when the cluster has
   GPUs, the model then running on CUDA; else ``actor_cpus`` ONNX Runtime threads
   each), embeds each shard's new files and writes the shard to the shard directory
   (see lookalike.indexer.store.shards);
5. merge (driver): shards, in job order, go through the batch indexer's commit, so
   ids, moves and copies are those of the single-process path; then the index.

Ray is imported only when this engine runs; the worker side is lookalike.indexer.ray.stages.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from lookalike.indexer.batch import BatchIndexer, IndexOptions, IndexSummary
from lookalike.indexer.errors import LookalikeError, needs_extra
from lookalike.indexer.loading import FileJob
from lookalike.indexer.models.protocol import Embedder
from lookalike.indexer.progress import RunProgress, progress_bar
from lookalike.indexer.ray.listing import list_files
from lookalike.indexer.ray.stages import ShardEmbedder, decode_batch, known_content
from lookalike.indexer.scan import FileEntry
from lookalike.indexer.store.library import Library
from lookalike.indexer.store.shards import (
    Shard,
    iter_leftovers,
    recoverable_rows,
    remove_orphans,
    shard_dir_for,
)

log = logging.getLogger(__name__)

# Test hook only: SIGKILL the driver when this many shards have arrived, before merging
# the last one, to prove that a killed job resumes from the shards on disk.
KILL_AFTER_SHARDS_ENV = "LOOKALIKE_TEST_KILL_AFTER_SHARDS"
DECODE_ROWS = 64  # files per decode task


@dataclass
class RayOptions:
    address: str | None = None  # an existing cluster ("HOST:6379", "ray://HOST:10001"); None: local
    local_cpus: int | None = None  # CPUs of the local instance started without an address
    shard_dir: str | Path | None = None  # shared storage on a cluster; default LIBRARY/shards
    shard_size: int = 512  # files per shard: one actor call, one file pair, one transaction
    actors: int | None = None  # model replicas; default one per GPU, else CPUs // actor_cpus
    actor_cpus: int = 1  # CPUs (ONNX Runtime threads) per model actor on CPU nodes
    gpus: bool | None = None  # one GPU per actor; None: when the cluster has GPUs
    # Where GPU actors embed: "auto" (cuda when torch in the actor sees the GPU Ray gave
    # it), "cuda" (an error where it cannot), "cpu" (no GPU actors at all).
    device: str = "auto"
    # Decoding a small JPEG costs ~1/9 of embedding it (1.9 vs 17 ms of CPU, measured;
    # a 12-megapixel one ~14 ms), so by default CPU actors reserve 7/8 of a CPU each and
    # decode tasks 1/8; fewer --ray-actors leave more CPUs to decoding.
    decode_share: float = 0.125


@dataclass
class RaySummary(IndexSummary):
    shards: int = 0
    recovered: int = 0  # embedded by an earlier, killed job; merged from its shards
    actors: int = 0
    gpus: int = 0
    devices: set[str] = field(default_factory=set)  # where the model actors ran
    stage_seconds: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict:
        out = super().as_dict()
        out.update(
            engine="ray",
            shards=self.shards,
            recovered=self.recovered,
            actors=self.actors,
            gpus=self.gpus,
            devices=sorted(self.devices),
            stage_seconds={k: round(v, 3) for k, v in self.stage_seconds.items()},
        )
        return out


def _import_ray():
    with needs_extra("ray", "--engine ray"):
        import ray
        import ray.data  # noqa: F401
    return ray


@contextmanager
def ray_session(options: RayOptions, quiet: bool = True) -> Iterator[object]:
    """Connect to the cluster at ``options.address``, or start a local instance.

    Without an address a *new* local instance is started (address="local"): a plain
    ``ray.init()`` would join whatever cluster happens to run on this machine.
    Ray is shut down on the way out, unless the caller had connected already.
    """
    ray = _import_ray()
    if ray.is_initialized():
        yield ray
        return
    kwargs: dict = {"include_dashboard": False, "log_to_driver": not quiet}
    if quiet:
        kwargs["logging_level"] = logging.WARNING
    try:
        if options.address:
            ray.init(address=options.address, **kwargs)
        else:
            ray.init(address="local", num_cpus=options.local_cpus, **kwargs)
    except ConnectionError as e:
        raise LookalikeError(f"cannot reach the Ray cluster at {options.address}: {e}") from e
    try:
        ctx = ray.data.DataContext.get_current()
        ctx.execution_options.preserve_order = True  # merge in job order: the same ids
        ctx.enable_progress_bars = False
        ctx.print_on_execution_start = False
        ctx.enable_auto_log_stats = False
        yield ray
    finally:
        ray.shutdown()


class RayIndexer(BatchIndexer):
    """The batch indexer with listing, decoding and embedding on Ray (module docstring)."""

    def __init__(
        self,
        library: Library,
        embedder: Embedder,
        options: IndexOptions | None = None,
        ray_options: RayOptions | None = None,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> None:
        super().__init__(library, embedder, options, on_progress)
        self.ray_options = ray_options or RayOptions()
        self.shard_dir = shard_dir_for(library.root, self.ray_options.shard_dir)

    def run(self, roots: list[str]) -> RaySummary:
        self.library.check_model(self.embedder.info)
        self._progress = RunProgress(self.library.root, roots)  # for the web app to show
        self._progress.update()
        try:
            return self._run(roots)
        finally:
            self._progress.close()

    def _run(self, roots: list[str]) -> RaySummary:
        start = time.perf_counter()
        summary = RaySummary()
        stage = summary.stage_seconds
        with ray_session(self.ray_options, quiet=not self.options.progress) as ray:
            t = time.perf_counter()
            entries, summary.skipped = list_files(ray, roots, exclude=[str(self.library.root)])
            stage["list"] = time.perf_counter() - t
            t = time.perf_counter()
            entries, planned = self._prepared(roots, entries, summary)
            self._recover(entries, summary)
            known = self.catalog.known_files()
            jobs, missing = self._plan(entries, known, planned, summary)
            summary.unchanged -= summary.recovered  # counted as added/updated already
            by_hash: dict[str, list[int]] = {}
            for _path, (image_id, _s, _m, digest) in known.items():
                by_hash.setdefault(digest, []).append(image_id)
            missing_ids = {known[p][0] for p in missing}
            stage["plan"] = time.perf_counter() - t
            self._report(0, len(jobs))
            t = time.perf_counter()
            if jobs:
                self._run_pipeline(ray, jobs, by_hash, missing_ids, summary)
            stage["pipeline"] = time.perf_counter() - t
        self._remove(missing_ids, summary)
        if self.options.labels_from_folders:
            summary.labelled = self._label_from_folders(entries, roots)
        self._record_roots(roots)
        t = time.perf_counter()
        self.library.sync_index()  # an IVF index, trained and filled by pages, when large
        stage["index"] = time.perf_counter() - t
        summary.seconds = time.perf_counter() - start
        return summary

    # -- resume --------------------------------------------------------------
    def _recover(self, entries: list[FileEntry], summary: RaySummary) -> None:
        """Merge what a killed job embedded and wrote, before planning this run."""
        remove_orphans(self.shard_dir)
        current = {e.path: e for e in entries}
        known = self.catalog.known_files()
        for shard in iter_leftovers(self.shard_dir, self.embedder.info.key()):
            rows = recoverable_rows(shard, current, known)
            if rows:
                self._commit(shard.writes(rows), set(), summary)
                summary.recovered += len(rows)
                for r in rows:
                    row = self.catalog.image_by_path(r["path"])
                    if row is not None:
                        known[r["path"]] = (row["id"], r["size"], r["mtime_ns"], r["hash"])
            shard.remove()
        if summary.recovered:
            log.info("recovered %d embedded files from earlier shards", summary.recovered)

    # -- the Ray Data job ------------------------------------------------------
    def _run_pipeline(self, ray, jobs: list[FileJob], by_hash, missing_ids, summary) -> None:
        opts = self.ray_options
        actors, gpus, actor_cpus = _actor_plan(ray.cluster_resources(), opts)
        summary.actors, summary.gpus = actors, gpus
        digests, ids = known_content(by_hash)
        known_ref = ray.put((digests, ids))
        info = self.embedder.info
        ds = ray.data.from_arrow(_job_blocks(jobs, min(DECODE_ROWS, opts.shard_size)))
        ds = ds.map_batches(
            decode_batch,
            batch_size=None,
            fn_kwargs={"model": info.to_json(), "max_pixels": self.options.max_pixels},
            fn_args=[known_ref],
            num_cpus=opts.decode_share,
            # A fractional CPU would let 1/decode_share tasks (processes) start per CPU.
            compute=ray.data.TaskPoolStrategy(
                size=_decode_tasks(ray.cluster_resources(), actors, actor_cpus)
            ),
        )
        ds = ds.map_batches(
            ShardEmbedder,
            batch_size=opts.shard_size,
            compute=ray.data.ActorPoolStrategy(size=actors),
            fn_constructor_kwargs={
                "model": info.to_json(),
                "shard_dir": str(self.shard_dir),
                "batch_size": self.options.batch_size,
                "threads": max(1, opts.actor_cpus) if not gpus else 1,
                "device": opts.device if gpus else "cpu",
            },
            num_cpus=actor_cpus,
            num_gpus=1 if gpus else 0,
        )
        kill_after = int(os.environ.get(KILL_AFTER_SHARDS_ENV, "0") or 0)
        bar = progress_bar(len(jobs), self.options.progress)
        stage = summary.stage_seconds
        try:
            for out in _domain_errors(ds.iter_rows()):
                if kill_after and summary.shards + 1 >= kill_after:
                    os.kill(os.getpid(), signal.SIGKILL)
                t, cpu = time.perf_counter(), time.thread_time()
                shard = Shard.read(out["manifest"])
                self._commit(shard.writes(), missing_ids, summary)
                summary.embedded += shard.embedded
                summary.shards += 1
                shard.remove()
                stage["merge"] = stage.get("merge", 0.0) + time.perf_counter() - t
                stage["merge_cpu"] = stage.get("merge_cpu", 0.0) + time.thread_time() - cpu
                for key in ("decode", "embed", "write", "decode_cpu", "embed_cpu"):
                    stage[f"worker_{key}"] = stage.get(f"worker_{key}", 0.0) + float(out[key])
                summary.devices.add(str(out["device"]))
                bar.update(int(out["rows"]))
                self._report(bar.n, len(jobs))
        finally:
            bar.close()
        if gpus and "cpu" in summary.devices:
            log.warning(
                "GPU actors embedded %s on the CPU: torch in the actors finds no CUDA", info.name
            )
        log.info("model actors embedded on %s", ", ".join(sorted(summary.devices)) or "-")


def _job_blocks(jobs: list[FileJob], rows: int) -> list:
    """The jobs as Arrow tables of ``rows`` rows (compact, one decode task each)."""
    import pyarrow as pa  # the ray extra, as ray itself

    table = pa.table(
        {
            "path": [j.entry.path for j in jobs],
            "size": pa.array([j.entry.size for j in jobs], pa.int64()),
            "mtime_ns": pa.array([j.entry.mtime_ns for j in jobs], pa.int64()),
            "old_id": pa.array([-1 if j.old_id is None else j.old_id for j in jobs], pa.int64()),
            "old_hash": [j.old_hash or "" for j in jobs],
        }
    )
    return [table.slice(i, rows) for i in range(0, len(jobs), rows)]


def _actor_plan(resources: dict, opts: RayOptions) -> tuple[int, int, float]:
    """(actors, gpus per actor, CPUs each actor reserves) for this cluster."""
    cluster_gpus = int(resources.get("GPU", 0))
    use_gpus = cluster_gpus > 0 if opts.gpus is None else opts.gpus
    if opts.device == "cpu":
        if opts.gpus:
            raise LookalikeError("--ray-gpus and --device cpu disagree; drop one of them")
        use_gpus = False
    elif opts.device.startswith("cuda"):
        if opts.gpus is False:
            raise LookalikeError("--device cuda and --no-ray-gpus disagree; drop one of them")
        use_gpus = True
    if use_gpus:
        if cluster_gpus == 0:
            flag = "--ray-gpus" if opts.gpus else "--device cuda"
            raise LookalikeError(f"{flag}: the Ray cluster has no GPUs; use --device cpu")
        return (opts.actors or cluster_gpus), 1, 1.0
    cpus = float(resources.get("CPU", 1))
    actors = opts.actors or max(1, int(cpus // opts.actor_cpus))
    return actors, 0, opts.actor_cpus * (1.0 - opts.decode_share)


def _decode_tasks(resources: dict, actors: int, actor_cpus: float) -> int:
    """Concurrent decode tasks: one for each CPU the model actors leave, at least two."""
    return max(2, math.ceil(float(resources.get("CPU", 1)) - actors * actor_cpus))


def _domain_errors(rows: Iterator[dict]) -> Iterator[dict]:
    """Re-raise a worker's LookalikeError (say ModelMismatch) as itself."""
    try:
        yield from rows
    except Exception as e:
        cause: BaseException | None = e
        while cause is not None:
            if isinstance(cause, LookalikeError):
                raise LookalikeError(str(cause)) from e
            cause = cause.__cause__
        raise


def index_paths_ray(
    library: Library,
    embedder: Embedder,
    roots: list[str],
    options: IndexOptions | None = None,
    ray_options: RayOptions | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> RaySummary:
    """Index ``roots`` into ``library`` on Ray, as its one writer (see RayIndexer)."""
    with library.locked():
        indexer = RayIndexer(library, embedder, options, ray_options, on_progress)
        return indexer.run(list(roots))
