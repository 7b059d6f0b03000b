"""The kernels of the reference's eager run of one model op call, traced: the call's reference
(kernels/reference) runs forward, and its autograd backward, on meta tensors of the call's shapes (nothing is
computed) under a dispatch mode (`KernelTrace`) that records each ATen operation that launches a kernel on a GPU, as
(bytes, FLOPs):
- bytes: every tensor the operation reads or writes, at the distinct elements it spans (a broadcast dimension, stride
  0, counts once): what the kernel moves at least;
- FLOPs: those of matrix products (mm, bmm, addmm, baddbmm: 2 m n k per product) and convolutions (2 per
  multiply-add); other operations are priced by their bytes.
Views (operations whose outputs alias an input without writing it), allocations and operations without a tensor
result (type promotion) are no kernels. A convolution's backward is one ATen operation for what CUDA runs as up to
three kernels, each reading the output gradient: cuDNN's input gradient and weight gradient and the bias gradient's
reduction; it is recorded as those.

profiling/cost_model.py prices each kernel at its roofline plus a launch (`eager_us`): a lower bound on the eager
time, which the static report sets beside our predictions.
"""

from __future__ import annotations

import math

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

import kernels
from bench.shapes import OpCall, make_args

_MATRIX_PRODUCTS = {"mm": (0, 1), "bmm": (0, 1), "addmm": (1, 2), "baddbmm": (1, 2)}  # op -> its two factors
_ALLOCATIONS = ("empty", "new_empty", "empty_like", "empty_strided")
_UNDECLARED_VIEWS = ("_unsafe_view",)  # views whose schema declares no alias (matmul's reshape of its product)


def spanned_bytes(tensor: torch.Tensor) -> int:
    """Bytes of the distinct elements `tensor` spans: its sizes along dimensions of nonzero stride."""
    if tensor.numel() == 0:
        return 0
    return math.prod(size for size, stride in zip(tensor.shape, tensor.stride()) if stride) * tensor.element_size()


def _tensors(tree) -> list:
    return [leaf for leaf in tree_leaves(tree) if isinstance(leaf, torch.Tensor)]


def _is_kernel(func, outputs: list) -> bool:
    """Whether an ATen operation with these tensor outputs launches a kernel: it returns a tensor (not a dtype or a
    size), and not only views of its inputs nor uninitialised memory."""
    returns = func._schema.returns
    views = all(r.alias_info is not None and not r.alias_info.is_write for r in returns)
    name = func.overloadpacket.__name__
    return bool(outputs) and not views and name not in _ALLOCATIONS and name not in _UNDECLARED_VIEWS


def _convolution_backward(args: tuple, grads: tuple) -> list[tuple[int, int]]:
    """The kernels of aten.convolution_backward(grad_out, input, weight, ..., output_mask): the input gradient
    (reads grad_out and the weight), the weight gradient (reads grad_out and the input), the bias gradient (reads
    grad_out), each where output_mask asks for it."""
    grad_out, x, weight = args[:3]
    flops = 2 * grad_out.numel() * weight[0].numel()
    grad_x, grad_w, grad_b = grads
    read = spanned_bytes(grad_out)
    found = [(read + spanned_bytes(weight) + spanned_bytes(grad_x), flops) if grad_x is not None else None,
             (read + spanned_bytes(x) + spanned_bytes(grad_w), flops) if grad_w is not None else None,
             (read + spanned_bytes(grad_b), 0) if grad_b is not None else None]
    return [kernel for kernel in found if kernel is not None]


def _flops(name: str, args: tuple, outputs: list) -> int:
    if name in _MATRIX_PRODUCTS:
        a, b = (args[i] for i in _MATRIX_PRODUCTS[name])
        return 2 * a.numel() * b.shape[-1]
    if name == "convolution":
        return 2 * outputs[0].numel() * args[1][0].numel()
    return 0


class KernelTrace(TorchDispatchMode):
    """Records (bytes, FLOPs) of each kernel the operations run under it launch (see the module docstring)."""

    def __init__(self):
        super().__init__()
        self.kernels: list[tuple[int, int]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        outputs = _tensors(out)
        if not _is_kernel(func, outputs):
            return out
        name = func.overloadpacket.__name__
        if name == "convolution_backward":
            self.kernels += _convolution_backward(args, out)
            return out
        nbytes = sum(map(spanned_bytes, _tensors((args, kwargs)))) + sum(map(spanned_bytes, outputs))
        self.kernels.append((nbytes, _flops(name, args, outputs)))
        return out


def eager_kernels(call: OpCall, dtype: torch.dtype = torch.bfloat16) -> dict[str, list[tuple[int, int]]]:
    """direction ("fwd", "bwd") -> [(bytes, FLOPs) of each kernel] of the reference's eager run of `call` on `dtype`
    inputs, the backward with respect to every tensor input from an upstream gradient of the output's shape."""
    reference = kernels.get_op(call.op, "torch")
    reference = getattr(reference, "__wrapped__", reference)  # autocast's wrapper: no autocast on meta tensors
    args, kwargs = make_args(call, dtype, "meta", requires_grad=True)
    leaves = _tensors((args, kwargs))
    with KernelTrace() as forward:
        out = reference(*args, **kwargs)
    with KernelTrace() as backward:
        torch.autograd.grad(out, leaves, torch.empty_like(out), allow_unused=True)
    return {"fwd": forward.kernels, "bwd": backward.kernels}
