"""What runs inside Ray workers for the Ray engine (see lookalike.indexer.ray.engine).

Decode tasks read, hash, decode and preprocess files (content the catalog already
holds is only hashed); model actors embed a shard's new files (on a GPU when Ray gave
them one) and write the shard. Everything here is plain Python over numpy batches:
the driver side imports Ray (a model actor only asks it which GPUs it was given).
Listing tasks are in lookalike.indexer.ray.listing.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import numpy as np

from lookalike.indexer.errors import ModelMismatch
from lookalike.indexer.loading import FileJob, LoadedFile, embed_loaded, load_job
from lookalike.indexer.models.device import resolve_device
from lookalike.indexer.models.protocol import Embedder, ModelInfo
from lookalike.indexer.models.registry import load_embedder_for
from lookalike.indexer.scan import FileEntry
from lookalike.indexer.store.shards import write_shard

log = logging.getLogger(__name__)

# A GPU is idle between small batches: on CUDA an actor embeds at least this many at once.
CUDA_BATCH = 128


def known_content(by_hash: dict[str, list[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Sorted 16-byte content hashes and a catalog id holding each (shared with tasks)."""
    if not by_hash:
        return np.zeros(0, dtype="S16"), np.zeros(0, dtype=np.int64)
    digests = np.array([bytes.fromhex(h) for h in by_hash], dtype="S16")
    ids = np.array([v[0] for v in by_hash.values()], dtype=np.int64)
    order = np.argsort(digests)
    return digests[order], ids[order]


class KnownContent:
    """``by_hash.get`` over the sorted arrays of known_content (what load_job asks)."""

    def __init__(self, digests: np.ndarray, ids: np.ndarray) -> None:
        self.digests, self.ids = digests, ids

    def get(self, digest: str) -> list[int] | None:
        if not len(self.digests):
            return None
        key = np.array(bytes.fromhex(digest), dtype="S16")
        i = int(np.searchsorted(self.digests, key))
        if i < len(self.digests) and self.digests[i] == key:
            return [int(self.ids[i])]
        return None


# -- decoding and embedding -----------------------------------------------------
_EMBEDDERS: dict[str, Embedder] = {}


def _embedder_in_worker(model: str, **options) -> Embedder:
    """The library's model in this worker process, checked against the driver's."""
    info = ModelInfo.from_json(model)
    key = (info.key(), tuple(sorted(options.items())))
    cached = _EMBEDDERS.get(str(key))
    if cached is not None:
        return cached
    embedder = load_embedder_for(info, **options)  # with the library's --weights file
    if embedder.info.key() != info.key():
        raise ModelMismatch(f"Ray worker on {os.uname().nodename}", info.name, embedder.info.name)
    _EMBEDDERS[str(key)] = embedder
    return embedder


def decode_batch(batch: dict, known, *, model: str, max_pixels: int) -> dict:
    """Decode task: read, hash, decode and preprocess; known content is not decoded."""
    start, cpu = time.perf_counter(), time.thread_time()
    if not isinstance(known, tuple):  # an ObjectRef when Ray passes it unresolved
        import ray  # the ray extra; loaded already in a Ray worker

        known = ray.get(known)
    embedder = _embedder_in_worker(model, threads=1)
    lookup = KnownContent(*known)
    out: dict[str, list] = {k: [] for k in _DECODED}
    for i in range(len(batch["path"])):
        old_id = int(batch["old_id"][i])
        entry = FileEntry(str(batch["path"][i]), int(batch["size"][i]), int(batch["mtime_ns"][i]))
        job = FileJob(entry, None if old_id < 0 else old_id, str(batch["old_hash"][i]) or None)
        loaded = load_job(job, embedder, max_pixels, lookup)
        pixels = loaded.pixels
        out["path"].append(entry.path)
        out["size"].append(entry.size)
        out["mtime_ns"].append(entry.mtime_ns)
        out["old_id"].append(old_id)
        out["old_hash"].append(job.old_hash or "")
        out["digest"].append(loaded.digest)
        out["width"].append(loaded.width)
        out["height"].append(loaded.height)
        out["reuse_id"].append(-1 if loaded.reuse_id is None else loaded.reuse_id)
        out["error"].append("" if loaded.error is None else loaded.error)
        out["failed"].append(loaded.error is not None)
        out["pixels"].append(b"" if pixels is None else pixels.tobytes())
        out["shape"].append("" if pixels is None else "x".join(map(str, pixels.shape)))
    rows = max(1, len(batch["path"]))
    out["decode_s"] = [(time.perf_counter() - start) / rows] * len(out["path"])
    out["decode_cpu"] = [(time.thread_time() - cpu) / rows] * len(out["path"])
    return {k: np.array(v, dtype=object if k in ("pixels",) else None) for k, v in out.items()}


_DECODED = (
    "path size mtime_ns old_id old_hash digest width height reuse_id error failed pixels shape"
).split()


def _loaded_from(batch: dict) -> list[LoadedFile]:
    items = []
    for i in range(len(batch["path"])):
        old_id = int(batch["old_id"][i])
        entry = FileEntry(str(batch["path"][i]), int(batch["size"][i]), int(batch["mtime_ns"][i]))
        job = FileJob(entry, None if old_id < 0 else old_id, str(batch["old_hash"][i]) or None)
        raw, shape = batch["pixels"][i], str(batch["shape"][i])
        pixels = None
        if shape:
            dims = tuple(int(d) for d in shape.split("x"))
            pixels = np.frombuffer(raw, dtype=np.uint8).reshape(dims)
        reuse = int(batch["reuse_id"][i])
        error = str(batch["error"][i]) if bool(batch["failed"][i]) else None
        items.append(
            LoadedFile(
                job,
                str(batch["digest"][i]),
                pixels,
                int(batch["width"][i]),
                int(batch["height"][i]),
                None if reuse < 0 else reuse,
                error,
            )
        )
    return items


def actor_device(requested: str) -> str:
    """Where a model actor embeds: ``requested``, with "auto" resolved for this actor.

    "auto" is "cuda" when Ray gave the actor a GPU and torch sees CUDA; without a GPU
    from Ray it is "cpu", decided without importing torch.
    """
    if requested != "auto":
        return requested
    import ray  # loaded already: this runs inside a Ray worker

    if not ray.get_gpu_ids():
        return "cpu"
    device = resolve_device("auto")
    if device == "cpu":
        log.warning(
            "this actor has GPU %s, but torch finds no CUDA: embedding on the CPU",
            ray.get_gpu_ids(),
        )
    return device


class ShardEmbedder:
    """Actor: one model; embeds a shard's new files and writes the shard.

    ``device`` is "cpu", "cuda" or "auto" (see actor_device); on CUDA the new files
    go to the model in batches of at least CUDA_BATCH.
    """

    def __init__(
        self, model: str, shard_dir: str, batch_size: int, threads: int, device: str
    ) -> None:
        self.device = actor_device(device)
        self.embedder = _embedder_in_worker(model, threads=threads, device=self.device)
        self.info = ModelInfo.from_json(model)
        self.shard_dir = Path(shard_dir)
        gpu = self.device.startswith("cuda")
        self.batch_size = max(batch_size, CUDA_BATCH) if gpu else batch_size
        log.info(
            "model actor on %s embeds %s on %s", os.uname().nodename, self.info.name, self.device
        )

    def __call__(self, batch: dict) -> dict:
        loaded = _loaded_from(batch)
        new = [item for item in loaded if item.pixels is not None]
        t, cpu = time.perf_counter(), time.thread_time()
        embedded = []
        for i in range(0, len(new), self.batch_size):
            embedded.extend(embed_loaded(self.embedder, new[i : i + self.batch_size]))
        embed_s, embed_cpu = time.perf_counter() - t, time.thread_time() - cpu
        decode_s = float(np.sum(batch["decode_s"].astype(np.float64)))
        decode_cpu = float(np.sum(batch["decode_cpu"].astype(np.float64)))
        stats = {"decode": decode_s, "embed": embed_s, "decode_cpu": decode_cpu}
        stats["embed_cpu"] = embed_cpu
        t = time.perf_counter()
        manifest = write_shard(
            self.shard_dir, self.info.key(), self.info.dim, loaded, embedded, stats
        )
        write_s = time.perf_counter() - t
        return {
            "manifest": np.array([str(manifest)]),
            "rows": np.array([len(loaded)]),
            "embedded": np.array([len(embedded)]),
            "decode": np.array([decode_s]),
            "embed": np.array([embed_s]),
            "write": np.array([write_s]),
            # CPU seconds of the calling thread (ONNX Runtime runs a 1-thread session in it)
            "decode_cpu": np.array([decode_cpu]),
            "embed_cpu": np.array([embed_cpu]),
            "device": np.array([self.device]),
        }
