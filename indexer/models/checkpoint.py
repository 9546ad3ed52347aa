"""Reading a torch checkpoint (a flat state dict) into numpy arrays, without torch.

The default model's weights ship as a ``.pth`` in torch's legacy (pre-1.6) format:
a magic-number pickle, a protocol-version pickle, a sys-info pickle, the state dict's
pickle (tensors refer to storages by persistent id), a pickle listing the storage
keys, then each storage's bytes, each preceded by its element count (int64, in the
writer's byte order). The zip format of torch >= 1.6 (``<name>/data.pkl`` plus one
``<name>/data/<key>`` file per storage) is read too.

Unpickling runs arbitrary code unless restricted, and a checkpoint comes from outside:
``_Unpickler.find_class`` allows only the few globals a state dict needs, each mapped
to a stand-in here, and refuses everything else.

This is what lets the default model's ONNX graphs be built without torch (see
``efficientnet_graph``); it reads flat state dicts of tensors, nothing more.
"""

from __future__ import annotations

import io
import pickle
import struct
import zipfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from lookalike.indexer.errors import ModelUnavailable

MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
PROTOCOL_VERSION = 1001

# torch's storage type names -> numpy dtypes (bfloat16: see _as_numpy).
_STORAGE_DTYPES: dict[str, str] = {
    "DoubleStorage": "f8",
    "FloatStorage": "f4",
    "HalfStorage": "f2",
    "BFloat16Storage": "u2",
    "LongStorage": "i8",
    "IntStorage": "i4",
    "ShortStorage": "i2",
    "CharStorage": "i1",
    "ByteStorage": "u1",
    "BoolStorage": "?",
}


ByteOrder = Literal["<", ">"]


class CheckpointError(ModelUnavailable):
    """A file that is not a checkpoint this module can read (truncated, foreign, unsafe)."""


@dataclass(frozen=True)
class _StorageType:
    """Stands in for ``torch.FloatStorage`` and its kin: only the element type matters."""

    name: str

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(_STORAGE_DTYPES[self.name])


@dataclass
class _Storage:
    """A storage named by the pickle; its bytes arrive later (legacy) or from the zip."""

    kind: _StorageType
    numel: int
    data: np.ndarray | None = None  # flat, native byte order, filled in by the reader


@dataclass(frozen=True)
class _StorageView:
    """A slice of a storage (legacy files may pickle one tensor's part of a storage)."""

    root: _Storage
    offset: int  # in elements
    numel: int


@dataclass(frozen=True)
class _LazyTensor:
    """A tensor's place in a storage, made an array once the storage's bytes are read."""

    storage: _Storage | _StorageView
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild_tensor_v2(
    storage, storage_offset, size, stride, requires_grad, backward_hooks, metadata=None
):
    """Stand-in for ``torch._utils._rebuild_tensor_v2``; the grad flags do not matter."""
    if not isinstance(storage, (_Storage, _StorageView)):
        raise pickle.UnpicklingError(f"a tensor whose storage is a {type(storage).__name__}")
    return _LazyTensor(storage, int(storage_offset), tuple(map(int, size)), tuple(map(int, stride)))


def _rebuild_parameter(data, requires_grad, backward_hooks):
    """Stand-in for ``torch._utils._rebuild_parameter`` (a saved nn.Parameter)."""
    return data


_ALLOWED: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    **{("torch", name): _StorageType(name) for name in _STORAGE_DTYPES},
}


class _Unpickler(pickle.Unpickler):
    """Resolves only ``_ALLOWED``; storages come from ``storage_for`` (one per format)."""

    def __init__(self, file: io.BytesIO, storage_for) -> None:
        super().__init__(file)
        self._storage_for = storage_for

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing global {module}.{name}: a state dict of tensors needs only "
                "collections.OrderedDict, torch._utils._rebuild_tensor_v2 and torch storage types"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        if not (isinstance(pid, tuple) and pid and pid[0] in ("storage", b"storage")):
            raise pickle.UnpicklingError(f"unknown persistent id {pid!r:.80}")
        if not isinstance(pid[1], _StorageType):
            raise pickle.UnpicklingError(f"a storage of type {pid[1]!r:.80}")
        return self._storage_for(pid[1:])


def read_checkpoint(path: str | Path) -> dict[str, np.ndarray]:
    """The tensors of a torch checkpoint at ``path``, in file order, as numpy arrays.

    Both of torch's formats are read: the legacy one the default weights ship in and
    the zip one. bfloat16 tensors come back as float32 (numpy has no bfloat16; exact).

    Raises:
        CheckpointError: a truncated, foreign or unsafe file (the message names ``path``).
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read: {e}") from e
    try:
        if raw[:4] == b"PK\x03\x04":
            return _read_zip(raw)
        return _read_legacy(raw)
    except CheckpointError as e:
        raise CheckpointError(f"{path}: {e}") from e
    except (
        pickle.UnpicklingError,
        EOFError,
        ValueError,
        TypeError,
        KeyError,
        IndexError,
        AttributeError,
        OverflowError,
        struct.error,
        zipfile.BadZipFile,
    ) as e:
        raise CheckpointError(
            f"{path}: not a readable torch checkpoint: {type(e).__name__}: {e}"
        ) from e


def _read_legacy(raw: bytes) -> dict[str, np.ndarray]:
    """The legacy layout (see the module docstring)."""
    f = io.BytesIO(raw)
    storages: dict[str, _Storage] = {}

    def storage_for(data: tuple) -> _Storage | _StorageView:
        kind, root_key, _location, numel, view = data
        root = storages.setdefault(str(root_key), _Storage(kind, int(numel)))
        if root.kind != kind:
            raise CheckpointError(f"storage {root_key} read as {root.kind.name} and {kind.name}")
        if view is None:
            return root
        _view_key, offset, size = view
        return _StorageView(root, int(offset), int(size))

    def load() -> Any:
        return _Unpickler(f, storage_for).load()

    if load() != MAGIC_NUMBER:
        raise CheckpointError("not a torch checkpoint (wrong magic number)")
    if (version := load()) != PROTOCOL_VERSION:
        raise CheckpointError(f"unsupported torch serialization protocol {version!r:.40}")
    sys_info = load()
    order: ByteOrder = (
        "<" if not isinstance(sys_info, dict) or sys_info.get("little_endian", True) else ">"
    )
    result = load()
    keys = load()
    if not isinstance(keys, list) or set(map(str, keys)) != set(storages):
        raise CheckpointError("the storage key list does not match the tensors' storages")
    for key in map(str, keys):
        storage = storages[key]
        (count,) = struct.unpack(order + "q", _take(f, 8, f"storage {key}'s size"))
        if count != storage.numel:
            raise CheckpointError(
                f"storage {key} holds {count} elements, the pickle says {storage.numel}"
            )
        itemsize = storage.kind.dtype.itemsize
        storage.data = _as_numpy(_take(f, count * itemsize, f"storage {key}"), storage.kind, order)
    return _materialise(result)


def _read_zip(raw: bytes) -> dict[str, np.ndarray]:
    """The zip layout of torch >= 1.6: every storage is a file of raw bytes."""
    with zipfile.ZipFile(io.BytesIO(raw)) as zf:
        names = zf.namelist()
        pickles = [n for n in names if n.endswith("/data.pkl") and n.count("/") == 1]
        if len(pickles) != 1:
            raise CheckpointError("a zip file, but not a torch checkpoint (no <name>/data.pkl)")
        prefix = pickles[0][: -len("data.pkl")]
        order: ByteOrder = "<"
        if prefix + "byteorder" in names:
            order = "<" if zf.read(prefix + "byteorder").strip() == b"little" else ">"

        storages: dict[str, _Storage] = {}  # tensors may share a storage: read it once

        def storage_for(data: tuple) -> _Storage:
            kind, key, _location, numel = data[:4]
            if str(key) in storages:
                return storages[str(key)]
            member = f"{prefix}data/{key}"
            if member not in names:
                raise CheckpointError(f"storage {key} is missing from the archive")
            blob = zf.read(member)
            if len(blob) < int(numel) * kind.dtype.itemsize:
                raise CheckpointError(
                    f"storage {key}: {len(blob)} bytes, {numel} elements expected"
                )
            blob = blob[: int(numel) * kind.dtype.itemsize]
            storages[str(key)] = _Storage(kind, int(numel), _as_numpy(blob, kind, order))
            return storages[str(key)]

        result = _Unpickler(io.BytesIO(zf.read(pickles[0])), storage_for).load()
    return _materialise(result)


def _take(f: io.BytesIO, n: int, what: str) -> bytes:
    """Exactly ``n`` bytes, or a clear error: a short read means a truncated file."""
    data = f.read(n)
    if len(data) != n:
        raise CheckpointError(f"truncated: {what} needs {n} bytes, {len(data)} left")
    return data


def _as_numpy(blob: bytes, kind: _StorageType, order: ByteOrder) -> np.ndarray:
    """A storage's bytes as a flat native-order array (bfloat16 widened to float32)."""
    array = np.frombuffer(blob, dtype=kind.dtype.newbyteorder(order)).astype(
        kind.dtype.newbyteorder("=")
    )
    if kind.name == "BFloat16Storage":  # bfloat16 is float32's top half: exact
        array = (array.astype(np.uint32) << 16).view(np.float32)
    return array


def _materialise(result: Any) -> dict[str, np.ndarray]:
    """The state dict with every lazy tensor turned into its own contiguous array."""
    if not isinstance(result, dict):
        raise CheckpointError(f"the checkpoint holds a {type(result).__name__}, not a state dict")
    out: dict[str, np.ndarray] = {}
    for name, value in result.items():
        if not isinstance(value, _LazyTensor):
            raise CheckpointError(f"entry {name!r:.80} is a {type(value).__name__}, not a tensor")
        out[str(name)] = _tensor(str(name), value)
    return out


def _tensor(name: str, t: _LazyTensor) -> np.ndarray:
    """One tensor, copied out of its storage by offset and strides (bounds checked first:
    ``as_strided`` would read past the buffer otherwise)."""
    storage, offset = t.storage, t.offset
    limit = storage.numel
    if isinstance(storage, _StorageView):
        if storage.offset < 0 or storage.offset + storage.numel > storage.root.numel:
            raise CheckpointError(f"tensor {name}: its storage view lies outside the storage")
        offset += storage.offset
        limit = storage.offset + storage.numel
        storage = storage.root
    if storage.data is None:
        raise CheckpointError(f"tensor {name}: its storage's bytes are missing")
    if len(t.shape) != len(t.stride) or min(t.shape, default=1) < 0 or min(t.stride, default=0) < 0:
        raise CheckpointError(f"tensor {name}: shape {t.shape} and strides {t.stride} do not fit")
    if 0 in t.shape:
        return np.zeros(t.shape, storage.data.dtype)
    last = offset + sum((n - 1) * s for n, s in zip(t.shape, t.stride, strict=True))
    if t.offset < 0 or last >= limit:
        raise CheckpointError(
            f"tensor {name}: shape {t.shape}, strides {t.stride} and offset "
            f"{t.offset} reach past its storage of {limit} elements"
        )
    item = storage.data.itemsize
    view = np.lib.stride_tricks.as_strided(
        storage.data[offset:], shape=t.shape, strides=[s * item for s in t.stride], writeable=False
    )
    return np.array(view, copy=True, order="C")
