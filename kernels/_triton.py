"""What the three Triton op modules share: the interpreter switch, device helpers that run under it whatever the
import order, the dot wrapper, the device check of the launchers and the ahead-of-time signatures.

Import order. TRITON_INTERPRET must be set before triton is first imported: `@triton.jit` reads it when it decorates,
so that Triton's own library functions (tl.sum, tl.max, tl.zeros, tl.cdiv, ...) become interpretable only if the
variable was set when `import triton` ran. When another package imported triton first (timm does, through
torch._dynamo), those library functions stay compiled-only and raise "Cannot call @triton.jit'd outside of the scope
of a kernel" in the interpreter. So the kernels call only Triton builtins (tl.load, tl.dot, tl.reduce, tl.full, ...)
and the helpers below, which are defined after the variable is set: `sum_` and `max_` are tl.sum and tl.max through
the builtin tl.reduce with Triton's own combine functions (which the interpreter recognises by identity, compiled code
reduces exactly as tl.sum / tl.max do), `cdiv` is tl.cdiv's arithmetic, and zero tiles are tl.full(shape, 0, dtype).
"""

from __future__ import annotations

import os

import torch

from ._interpret import use_interpreter_without_cuda

use_interpreter_without_cuda()  # before triton's first import where this process imports it

import triton  # noqa: E402
import triton.language as tl  # noqa: E402

INTERPRETED = os.environ.get("TRITON_INTERPRET") == "1"
# The same for @jit code: Triton's interpreter multiplies bfloat16 dot operands as raw bits (its create_dot does not
# convert them), so there (only) they are widened to float32 first, which is exact for products of bfloat16 values.
_INTERPRETED: tl.constexpr = tl.constexpr(INTERPRETED)


@triton.jit
def round_mantissa(x, DROPPED_BITS: tl.constexpr):
    """fp32 x rounded to nearest (ties to even) with its DROPPED_BITS low mantissa bits cleared, by integer arithmetic
    on the bits: 13 gives TF32 (10 mantissa bits kept of 23), 16 gives bf16 (7 kept)."""
    bits = x.to(tl.uint32, bitcast=True)
    half_ulp = ((1 << (DROPPED_BITS - 1)) - 1) + ((bits >> DROPPED_BITS) & 1)
    bits = ((bits + half_ulp) >> DROPPED_BITS) << DROPPED_BITS
    return bits.to(tl.float32, bitcast=True)


@triton.jit
def round_to_tf32(x):
    """fp32 x rounded to the nearest TF32 value (ties to even), one cvt.rn.tf32.f32 per element: a TF32 product's
    operand (`dot`). x itself in the interpreter, whose dot multiplies fp32 exactly: there the kernels' fp32 math is
    compared with IEEE fp32 references (the whole model's too, tests/sca_mtl/test_model_on_triton.py, within a small
    factor of fp32's error), and the GPU tests check the rounding (tests/kernels/test_triton_helpers.py)."""
    if _INTERPRETED:
        return x
    return tl.inline_asm_elementwise("cvt.rn.tf32.f32 $0, $1;", "=r,r", [x], dtype=tl.float32, is_pure=True, pack=1)


@triton.jit
def dot(a, b, acc, DOT_PRECISION: tl.constexpr):
    """acc + a @ b with fp32 accumulation (acc None: a @ b), the operands' products at DOT_PRECISION ("tf32" or "ieee";
    ignored for 16-bit operands, whose products are exact). TF32 operands are rounded to nearest here: the tensor core
    reads an fp32 operand's top 19 bits, i.e. truncates it toward zero, a bias of about 2^-11.5 per operand that adds up
    coherently over a sum of products (the window attention's fp32 outputs and gradients then miss KERNEL_TOL by up to
    1.54x in a float64 simulation, tests/kernels/simulate_tf32.py; rounded, they stay within 0.80x of it). Not in the
    interpreter (`round_to_tf32`)."""
    if _INTERPRETED and a.dtype == tl.bfloat16:
        return tl.dot(a.to(tl.float32), b.to(tl.float32), acc, input_precision="ieee")
    if DOT_PRECISION == "tf32":
        if a.dtype == tl.float32:
            a = round_to_tf32(a)
        if b.dtype == tl.float32:
            b = round_to_tf32(b)
    return tl.dot(a, b, acc, input_precision=DOT_PRECISION)


@triton.jit
def sum_(x, axis: tl.constexpr):
    """tl.sum(x, axis) without its library function (see the module docstring)."""
    return tl.reduce(x, axis, tl.standard._sum_combine)


@triton.jit
def max_(x, axis: tl.constexpr):
    """tl.max(x, axis) of a floating-point tile without its library function (see the module docstring)."""
    return tl.reduce(x, axis, tl.standard._elementwise_max)


@triton.jit
def cdiv(a, b):
    """ceil(a / b) for positive integers: tl.cdiv without its library function."""
    return (a + b - 1) // b


def check_device(name: str, tensor: torch.Tensor) -> None:
    """The launchers' tensors live on a CUDA device, or on the CPU when the kernels run in the interpreter."""
    expected = "cpu" if INTERPRETED else "cuda"
    if tensor.device.type != expected:
        where = "Triton's interpreter, without a CUDA device" if INTERPRETED else "the GPU kernels"
        raise ValueError(f"{name} must be on a {expected} device for the triton backend ({where}), got {tensor.device}")


def aot_signature(kernel, element: str, *, pointers: dict[str, str] | None = None, floats: tuple[str, ...] = (),
                  unit_strides: tuple[str, ...] = (), constexprs: dict | None = None) -> tuple[dict, dict]:
    """Triton's (signature, constexprs) of a launch of `kernel`: `constexprs` and the `tl.constexpr` parameters are
    compile-time constants; pointer `*_ptr` arguments point to `element` ("bf16", ...) unless `pointers` names their
    type ("fp32", "i64"); `floats` are fp32 scalars; `unit_strides` are strides of 1, which the JIT specialises to the
    constant 1 (as it does at run time); every other argument is an i32 scalar."""
    pointers, values = pointers or {}, dict(constexprs or {})
    signature = {}
    for param in kernel.params:
        name = param.name
        if name in values or param.is_constexpr:
            signature[name] = "constexpr"
        elif name.endswith("_ptr"):
            signature[name] = f"*{pointers.get(name, element)}"
        elif name in unit_strides:
            signature[name], values[name] = "constexpr", 1
        else:
            signature[name] = "fp32" if name in floats else "i32"
    return signature, values
