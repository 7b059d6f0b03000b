"""Shared test set-up: the `gpu` marker skips without CUDA; every test starts from a fixed seed. Under pytest-xdist
(`make test`: one worker per core, a file at a time, in the order of the collection) the `slow` tests come first, so
that the files holding them start first and the workers finish together instead of one running the longest at the
end. Workers keep torch's default threads: tests compare runs in subprocesses (which start with the default) bitwise
with runs in the worker, and a different thread count sums in another order."""

import os

import pytest
import torch

import kernels  # noqa: F401  (before any test module imports timm, which imports triton: see kernels/_interpret.py)


def pytest_report_header(config):
    """The versions a run tested (CI installs the newest torch / triton pip offers; the GPU machine has others)."""
    import importlib.metadata

    def version(package: str) -> str:
        try:
            return importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            return "not installed"

    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "no CUDA device (Triton interpreter)"
    return f"sca-mtl tested with torch {torch.__version__}, triton {version('triton')}; {device}"


def pytest_collection_modifyitems(config, items):
    if os.environ.get("PYTEST_XDIST_WORKER"):  # every worker sorts its identical collection alike
        items.sort(key=lambda item: "slow" not in item.keywords)  # stable: slow ones first, each in its order
    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
