"""Kernel tests run with uninitialised memory poisoned: an output element a kernel forgets to write is NaN, and NaN
fails every comparison."""

import pytest
import torch

from kernels._interpret import use_interpreter_without_cuda

use_interpreter_without_cuda()  # before any kernel module is imported by a test


def _poisoned(factory):
    def make(*args, **kwargs):
        tensor = factory(*args, **kwargs)
        if tensor.is_floating_point():
            tensor.fill_(float("nan"))
        return tensor

    return make


@pytest.fixture(autouse=True)
def poison_uninitialised_memory(monkeypatch):
    monkeypatch.setattr(torch, "empty", _poisoned(torch.empty))
    monkeypatch.setattr(torch, "empty_like", _poisoned(torch.empty_like))
    monkeypatch.setattr(torch.Tensor, "new_empty", _poisoned(torch.Tensor.new_empty))
