"""The indexer's units of work and the steps that run outside the writer.

A ``FileJob`` is a file the plan wants (re)indexed; ``load_job`` reads, hashes,
decodes and preprocesses it into a ``LoadedFile`` (content the catalog already holds
is only hashed); ``embed_loaded`` turns a batch of decoded files into catalog rows.
The single-process indexer (lookalike.indexer.batch) runs these in loader threads
through ``read_ahead``; the Ray engine runs them in its tasks and actors
(lookalike.indexer.ray.stages), and shards carry them between the two
(lookalike.indexer.store.shards). The copy-descriptor pass reads ahead the same way.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import NamedTuple, Protocol, TypeVar

import numpy as np

from lookalike.indexer.errors import UnreadableImage
from lookalike.indexer.identity import Identity, identity_of
from lookalike.indexer.images import load_image
from lookalike.indexer.models.protocol import Embedder
from lookalike.indexer.scan import FileEntry, file_hash
from lookalike.indexer.store.catalog import NewImage

T = TypeVar("T")
R = TypeVar("R")

TOP_CLASSES = 5  # the model's own class guesses kept per image (tag suggestions)


class FileJob(NamedTuple):
    """A file the plan wants indexed: new, or known under its path and changed."""

    entry: FileEntry
    old_id: int | None  # the catalog id when the path is known but changed
    old_hash: str | None


class LoadedFile(NamedTuple):
    """A job's file read: decoded for the model, reused, or failed."""

    job: FileJob
    digest: str
    pixels: np.ndarray | None  # preprocessed model input; None when the vector is reused
    width: int
    height: int
    reuse_id: int | None  # an image with the same content already in the catalog
    error: str | None
    identity: Identity | None = None  # of the file read (lookalike.indexer.identity)


class ContentLookup(Protocol):
    """Content hash -> the catalog ids holding it (a dict, or the Ray tasks' sorted arrays)."""

    def get(self, digest: str, /) -> list[int] | None: ...


def read_ahead(fn: Callable[[T], R], items: Iterable[T], workers: int, window: int) -> Iterator[R]:
    """fn over items in loader threads, the results in order, at most ``window`` in flight."""
    with ThreadPoolExecutor(max(1, workers), thread_name_prefix="load") as pool:
        inflight: deque[Future[R]] = deque()
        for item in items:
            inflight.append(pool.submit(fn, item))
            if len(inflight) >= window:
                yield inflight.popleft().result()
        while inflight:
            yield inflight.popleft().result()


def load_job(
    job: FileJob, embedder: Embedder, max_pixels: int, by_hash: ContentLookup
) -> LoadedFile:
    """Read, hash, decode and preprocess one file; known content is not decoded, its
    stored vector is reused."""
    path = job.entry.path
    try:
        with open(path, "rb") as f:
            identity = identity_of(os.fstat(f.fileno()))
            data = f.read()
    except OSError as e:
        return LoadedFile(job, "", None, 0, 0, None, e.strerror or str(e))
    digest = file_hash(data)
    if job.old_hash == digest:  # same bytes, new mtime: nothing to embed
        return LoadedFile(job, digest, None, 0, 0, job.old_id, None, identity)
    same = by_hash.get(digest)
    if same:
        return LoadedFile(job, digest, None, 0, 0, same[0], None, identity)
    try:
        loaded = load_image(data, min_side=embedder.min_side, max_pixels=max_pixels, name=path)
        pixels = embedder.preprocess(loaded.image)
    except UnreadableImage as e:
        return LoadedFile(job, digest, None, 0, 0, None, e.reason)
    return LoadedFile(job, digest, pixels, loaded.width, loaded.height, None, None, identity)


def embed_loaded(embedder: Embedder, batch: list[LoadedFile]) -> list[tuple[LoadedFile, NewImage]]:
    """Embed a batch of decoded files into catalog rows (vector and top class guesses)."""
    pixels = [b.pixels for b in batch if b.pixels is not None]
    assert len(pixels) == len(batch), "only decoded files are embedded"
    out = embedder.embed(np.stack(pixels))
    probs = out.class_probs
    names = embedder.class_names() if probs is not None else None
    results = []
    for i, b in enumerate(batch):
        top = None
        if probs is not None and names is not None:
            order = np.argsort(-probs[i])[:TOP_CLASSES]
            top = [(names[j], float(probs[i, j])) for j in order]
        e = b.job.entry
        new = NewImage(e.path, e.size, e.mtime_ns, b.digest, b.width, b.height, out.vectors[i], top)
        results.append((b, new))
    return results
