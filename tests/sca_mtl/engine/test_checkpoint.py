"""Checkpoints are written atomically, refused when damaged, and the random state round-trips."""

import random

import numpy as np
import pytest
import torch

from sca_mtl.engine import checkpoint


def test_a_crash_mid_save_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    checkpoint.atomic_save({"step": 1}, path)

    def crash(fd):  # the new file is written, not yet flushed to disk nor renamed
        raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint.os, "fsync", crash)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.atomic_save({"step": 2}, path)
    monkeypatch.undo()
    assert checkpoint.load_checkpoint(path, required=("step",)) == {"step": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temporary file left behind


def test_every_byte_of_the_payload_is_checked(tmp_path):
    path = tmp_path / "last.pt"
    checkpoint.atomic_save({"step": 1, "weights": torch.arange(100.0)}, path)
    data = path.read_bytes()
    for offset in range(len(checkpoint.MAGIC) + checkpoint.DIGEST_BYTES + 1, len(data), 97):
        damaged = bytearray(data)
        damaged[offset] ^= 0x01
        path.write_bytes(bytes(damaged))
        with pytest.raises(ValueError, match="is damaged"):
            checkpoint.load_checkpoint(path, required=("step",))


def test_temporaries_of_a_killed_write_are_removed(tmp_path):
    for name in (".last.pt.tmp-123", ".best.pt.tmp-9", "last.pt", ".other.tmp-1"):
        (tmp_path / name).write_bytes(b"x")
    removed = checkpoint.remove_temporaries(tmp_path, ["last.pt", "best.pt"])
    assert sorted(p.name for p in removed) == [".best.pt.tmp-9", ".last.pt.tmp-123"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.tmp-1", "last.pt"]


def test_unreadable_checkpoint_names_its_path(tmp_path):
    path = tmp_path / "last.pt"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=str(path)):
        checkpoint.load_checkpoint(path)
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        checkpoint.load_checkpoint(tmp_path / "missing.pt")


def test_rng_state_round_trip():
    state = checkpoint.rng_state()
    first = (random.random(), np.random.random(), torch.rand(3))  # noqa: NPY002
    checkpoint.set_rng_state(state)
    second = (random.random(), np.random.random(), torch.rand(3))  # noqa: NPY002
    assert first[:2] == second[:2] and torch.equal(first[2], second[2])
