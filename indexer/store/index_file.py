"""The index file's record: what a written generation holds, and a read that trusts
the file only when it matches.

When the library writes an index generation it records, in the catalog (one meta key,
in the same transaction as the generation number), the file's size, its CRC-32, the
number and dimension of its vectors and its kind. A read checks the size (a stat),
then the checksum (one streaming pass over the file before FAISS sees a byte, so
random or overwritten bytes never reach its parser, which may otherwise ask for
gigabytes or crash), then parses it and checks the count and dimension. Any
mismatch is a :class:`DamagedIndex`, which the library answers by rebuilding from the
catalog's vectors (the catalog is the truth), never by searching an empty index.

Measured here (scripts/bench_index_file.py, 2 loaded cores): a 256 MB flat index
(50k x 1280, the largest flat library) loads in 1.2-1.7 s checked against
0.8-1.1 s plain (1.25-1.7x over four runs), once per generation. Files written before this
record existed are parsed with every error caught, and their count is checked
against the catalog's.
"""

from __future__ import annotations

import json
import os
import struct
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import BinaryIO

from lookalike.indexer.errors import DamagedIndex
from lookalike.indexer.store.index_kinds import read_index
from lookalike.indexer.store.vector_index import VectorIndex, VectorSource

META_KEY = "index_file"  # JSON of IndexFileFacts for the current generation
READ_CHUNK = 8 * 2**20

# What FAISS (and the IVF container's reader) raise on bytes that are not an index:
# RuntimeError from FAISS's C++ checks, MemoryError from a size field read as
# gigabytes, the rest from the container's header.
PARSE_ERRORS = (
    RuntimeError,
    MemoryError,
    ValueError,
    KeyError,
    TypeError,
    EOFError,
    OSError,
    struct.error,
)


@dataclass(frozen=True)
class IndexFileFacts:
    """What a written index file holds (recorded with its generation)."""

    generation: int
    bytes: int
    crc32: int
    count: int  # vectors (the catalog's vectors when it was written)
    dim: int
    kind: str

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> IndexFileFacts:
        return cls(**json.loads(text))


class _CrcWriter:
    """A file wrapper that keeps the CRC-32 and size of what goes through ``write``."""

    def __init__(self, f: BinaryIO) -> None:
        self.f = f
        self.crc = 0
        self.size = 0

    def write(self, data: bytes) -> int:
        self.crc = zlib.crc32(data, self.crc)
        self.size += len(data)
        return self.f.write(data)


def save_index(index: VectorIndex, path: Path, generation: int) -> IndexFileFacts:
    """Write ``index`` atomically at ``path``; the facts to record with it."""
    crc: list[_CrcWriter] = []

    def wrap(f: BinaryIO) -> _CrcWriter:
        crc.append(_CrcWriter(f))
        return crc[0]

    index.save(path, wrap=wrap)
    return IndexFileFacts(
        generation=generation,
        bytes=crc[0].size,
        crc32=crc[0].crc,
        count=index.ntotal,
        dim=index.dim,
        kind=index.kind,
    )


def file_crc32(path: Path) -> int:
    crc = 0
    with open(path, "rb") as f:
        while chunk := f.read(READ_CHUNK):
            crc = zlib.crc32(chunk, crc)
    return crc


def quick_problem(path: Path, facts: IndexFileFacts | None) -> str | None:
    """What a stat alone tells is wrong with the file (missing, wrong size); None: nothing."""
    try:
        size = os.stat(path).st_size
    except FileNotFoundError:
        return "is missing"
    if facts is not None and size != facts.bytes:
        return f"is {size:,} bytes, not the {facts.bytes:,} written (truncated or overwritten)"
    return None


def read_checked(
    path: Path, facts: IndexFileFacts | None, source: VectorSource | None, dim: int
) -> VectorIndex:
    """The index at ``path`` if it is the file that was written; DamagedIndex if not.

    ``facts`` None (a file older than the record): parsed, with the parser's errors
    and a wrong dimension turned into DamagedIndex.
    """
    problem = quick_problem(path, facts)
    if problem is None and facts is not None and file_crc32(path) != facts.crc32:
        problem = "does not match its checksum (its bytes changed since it was written)"
    if problem is not None:
        raise DamagedIndex(path, problem)
    try:
        index = read_index(path, source=source)
    except FileNotFoundError:
        raise DamagedIndex(path, "is missing") from None
    except PARSE_ERRORS as e:
        raise DamagedIndex(path, f"is not a readable index ({type(e).__name__}: {e})") from None
    want_dim = facts.dim if facts is not None else dim
    if index.ntotal and want_dim and index.dim != want_dim:
        raise DamagedIndex(path, f"holds {index.dim}-d vectors, not {want_dim}-d")
    if facts is not None and index.ntotal != facts.count:
        raise DamagedIndex(path, f"holds {index.ntotal:,} vectors, not the {facts.count:,} written")
    return index
