"""Shared test set-up: the `gpu` marker skips without CUDA; every test starts from a fixed seed."""

import pytest
import torch

import kernels  # noqa: F401  (before any test module imports timm, which imports triton: see kernels/_interpret.py)


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
