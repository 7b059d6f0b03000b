"""The backend switch: defaults, the context manager, frozen layers, signatures, and no silent fallback."""

import inspect
import os
import subprocess
import sys

import pytest
import torch

import kernels
from kernels import dispatch, reference
from tests._utils import record_implementations

OPS = list(dispatch.OP_MODULES)


@pytest.fixture(autouse=True)
def _restore_backend():
    previous = kernels.get_backend()
    yield
    kernels.set_backend(previous)


def _backend_in_fresh_process(env_value):
    env = {**os.environ, dispatch.ENV_VAR: env_value}
    return subprocess.run(
        [sys.executable, "-c", "import kernels; print(kernels.get_backend())"], env=env, capture_output=True, text=True
    )


def test_environment_sets_the_initial_backend():
    result = _backend_in_fresh_process("triton")
    assert result.returncode == 0 and result.stdout.strip() == "triton", result.stderr


def test_bad_environment_value_names_the_variable():
    result = _backend_in_fresh_process("cuda")
    assert result.returncode != 0 and dispatch.ENV_VAR in result.stderr and "'cuda'" in result.stderr


def test_default_is_torch_without_the_environment_variable():
    env = {key: value for key, value in os.environ.items() if key != dispatch.ENV_VAR}
    result = subprocess.run(
        [sys.executable, "-c", "import kernels; print(kernels.get_backend())"], env=env, capture_output=True, text=True
    )
    assert result.stdout.strip() == "torch", result.stderr


def test_set_backend_rejects_unknown_names():
    with pytest.raises(ValueError, match="'cuda'"):
        kernels.set_backend("cuda")
    assert kernels.get_backend() in kernels.BACKENDS


def test_use_backend_restores_the_previous_backend_on_exit_and_on_error():
    kernels.set_backend("torch")
    with kernels.use_backend("triton") as name:
        assert name == "triton" and kernels.get_backend() == "triton"
    assert kernels.get_backend() == "torch"
    with pytest.raises(RuntimeError, match="boom"):
        with kernels.use_backend("triton"):
            raise RuntimeError("boom")
    assert kernels.get_backend() == "torch"


def test_use_backend_changes_state_on_enter_not_on_creation():
    kernels.set_backend("torch")
    manager = kernels.use_backend("triton")
    assert kernels.get_backend() == "torch"
    with manager:
        assert kernels.get_backend() == "triton"


@pytest.mark.parametrize("op", OPS)
def test_public_op_and_reference_share_one_signature(op):
    public = inspect.signature(getattr(kernels, op))
    ref = inspect.signature(getattr(reference, f"{op}_ref"))
    assert list(public.parameters.values()) == list(ref.parameters.values())


@pytest.mark.parametrize("op", OPS)
def test_torch_backend_returns_the_reference(op):
    assert dispatch.get_op(op, "torch") is getattr(reference, f"{op}_ref")


def test_missing_triton_op_raises_naming_the_op(monkeypatch):
    monkeypatch.setitem(dispatch.OP_MODULES, "fake_op", "no_such_kernel_module")
    with pytest.raises(NotImplementedError, match="fake_op.*no_such_kernel_module"):
        dispatch.get_op("fake_op", "triton")


@pytest.mark.parametrize("op", OPS)
def test_every_op_has_its_triton_kernel(op):
    assert dispatch.has_triton_kernel(op)


def test_unknown_op_is_rejected():
    with pytest.raises(ValueError, match="'softmax'"):
        dispatch.get_op("softmax")


def test_public_ops_dispatch_at_call_time(monkeypatch):
    calls = []

    def fake_get_op(op, backend=None):
        return lambda *args, **kwargs: calls.append((op, kernels.get_backend(), len(args), sorted(kwargs)))

    monkeypatch.setattr(kernels, "get_op", fake_get_op)
    kernels.set_backend("torch")
    with kernels.use_backend("triton"):
        kernels.linear_cross_attention(None, None, None)
    kernels.window_attention(None, None, num_heads=1, window_size=1)
    kernels.concat_conv1x1([None], None)
    assert calls == [
        ("linear_cross_attention", "triton", 3, ["eps", "feature_map"]),
        ("window_attention", "torch", 3, ["num_heads", "scale", "shift_size", "window_size"]),
        ("concat_conv1x1", "torch", 3, ["activation", "out_size", "residual"]),
    ]


def test_a_layer_keeps_the_backend_it_was_built_with(monkeypatch):
    from sca_mtl.models.layers import CrossAttention

    calls = record_implementations(monkeypatch)
    with kernels.use_backend("torch"):
        layer = CrossAttention(4)
    kernels.set_backend("triton")  # a layer that looked the op up at call time would now run the Triton kernel
    out = layer(torch.randn(2, 4, 3, 5), torch.randn(2, 4, 2, 2))
    assert layer.backend == "torch" and out.shape == (2, 4, 3, 5)
    assert calls == [("torch", "linear_cross_attention")]


def test_importing_a_triton_module_keeps_the_public_op():
    """kernels/window_attention.py shares its name with the public function: the import must not replace it."""
    import importlib

    public = {op: getattr(kernels, op) for op in OPS}
    for op in OPS:
        if dispatch.has_triton_kernel(op):
            importlib.import_module(f"kernels.{dispatch.OP_MODULES[op]}")
    assert {op: getattr(kernels, op) for op in OPS} == public
    assert all(fn.__module__ == "kernels" for fn in public.values())
