"""Reading torch checkpoints without torch (indexer/models/checkpoint.py): bit-exact
against torch.load, both of torch's formats, and refusal of truncated, foreign and
unsafe files."""

from __future__ import annotations

import pickle
import struct

import numpy as np
import pytest
import torch

from lookalike.indexer.errors import ModelUnavailable
from lookalike.indexer.models.checkpoint import (
    MAGIC_NUMBER,
    PROTOCOL_VERSION,
    CheckpointError,
    read_checkpoint,
)
from lookalike.indexer.models.efficientnet import weights_path


def test_the_default_weights_read_as_torch_reads_them():
    path = weights_path()
    ours = read_checkpoint(path)
    ref = torch.load(path, map_location="cpu", weights_only=True)
    assert list(ours) == list(ref) and len(ours) == 296
    for name, tensor in ref.items():
        expected = tensor.numpy()
        got = ours[name]
        assert got.dtype == expected.dtype and got.shape == expected.shape, name
        assert got.tobytes() == np.ascontiguousarray(expected).tobytes(), name  # bit-exact


@pytest.mark.parametrize("zipped", [True, False])
def test_both_formats_and_strided_views_of_a_shared_storage(tmp_path, zipped):
    base = torch.arange(60, dtype=torch.float32).reshape(5, 12)
    state = {
        "t": base.t(),
        "slice": base[1:4, 2::3],
        "half": torch.randn(3, 4).half(),
        "long": torch.tensor(7),
        "bf16": torch.randn(2, 3).bfloat16(),
        "empty": base[:0],
    }
    path = tmp_path / "state.pt"
    torch.save(state, path, _use_new_zipfile_serialization=zipped)
    got = read_checkpoint(path)
    assert list(got) == list(state)
    for name, tensor in state.items():
        expected = tensor.float().numpy() if name == "bf16" else tensor.numpy()
        assert np.array_equal(got[name], expected), name


def test_a_truncated_checkpoint_is_refused_naming_it(tmp_path):
    raw = weights_path().read_bytes()
    # In the pickles, at a storage's element count, in the last storage's bytes.
    for size in (0, 10, 200, 30_000, len(raw) // 2, len(raw) - 8 - 4000 - 3, len(raw) - 1):
        path = tmp_path / f"cut{size}.pth"
        path.write_bytes(raw[:size])
        with pytest.raises(CheckpointError, match=str(path)):
            read_checkpoint(path)


def test_foreign_and_missing_files_are_refused(tmp_path):
    for name, data in (
        ("text.pth", b"hello, world\n" * 10),
        ("list.pth", pickle.dumps([1, 2])),
        ("zip.pth", b"PK\x03\x04" + b"\0" * 50),
    ):
        (tmp_path / name).write_bytes(data)
        with pytest.raises(CheckpointError, match=name):
            read_checkpoint(tmp_path / name)
    with pytest.raises(ModelUnavailable, match="cannot read"):  # CheckpointError is one
        read_checkpoint(tmp_path / "missing.pth")


def _legacy_header() -> bytes:
    return b"".join(
        pickle.dumps(x, protocol=2)
        for x in (MAGIC_NUMBER, PROTOCOL_VERSION, {"little_endian": True})
    )


@pytest.mark.parametrize("at_start", [True, False])
def test_other_globals_are_refused_and_never_run(tmp_path, at_start):
    marker = tmp_path / "ran"
    evil = b"cos\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR."
    path = tmp_path / "evil.pth"
    path.write_bytes(evil if at_start else _legacy_header() + evil)
    with pytest.raises(CheckpointError, match="refusing global os.system"):
        read_checkpoint(path)
    assert not marker.exists()


def test_a_storage_too_short_for_its_tensor_is_refused(tmp_path):
    """Strides that reach past the storage must fail, not read memory beyond it."""
    main = (
        b"\x80\x02ccollections\nOrderedDict\n)R(X\x01\x00\x00\x00w"
        b"ctorch._utils\n_rebuild_tensor_v2\n((X\x07\x00\x00\x00storage"
        b"ctorch\nFloatStorage\nX\x01\x00\x00\x00kX\x03\x00\x00\x00cpuK\x04Ntq\x00Q"
        b"K\x00K\x04K\x04\x86K\x04K\x01\x86\x89ccollections\nOrderedDict\n)Rt"
        b"Ru."
    )  # a 4x4 tensor over a 4-element storage
    data = pickle.dumps(["k"], protocol=2) + struct.pack("<q", 4) + b"\0" * 16
    path = tmp_path / "short.pth"
    path.write_bytes(_legacy_header() + main + data)
    with pytest.raises(CheckpointError, match="reach past its storage"):
        read_checkpoint(path)
