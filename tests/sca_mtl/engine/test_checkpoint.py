"""Checkpoints are written atomically and the random state round-trips."""

import random

import numpy as np
import pytest
import torch

from sca_mtl.engine import checkpoint


def test_a_crash_mid_save_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    checkpoint.atomic_save({"step": 1}, path)

    def crash(obj, f):
        f.write(b"half a checkpoint")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.atomic_save({"step": 2}, path)
    monkeypatch.undo()
    assert checkpoint.load_checkpoint(path) == {"step": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temporary file left behind


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
