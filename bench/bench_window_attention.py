"""Benchmark of kernels.window_attention (KERNELS.md B.8) at the model's eleven shapes, batch 8, window 7.

Two levels, each with its providers side by side, forward, backward (from a retained graph) and forward+backward:

- op: (qkv, rel_bias, qkv_pad) -> out (B, H, W, C). Providers: `reference` (the eager torch reference),
  `reference_compiled` (torch.compile of it) and `triton`. Minimal bytes (e = bytes per element, T = B H W tokens,
  C = heads * head_dim, N = 49): forward reads qkv and writes out, 4 C e T, plus the bias heads N^2 e and qkv_pad
  3 C e; backward reads qkv and dO and writes dqkv, 7 C e T, plus the bias and its gradient 2 heads N^2 e and
  qkv_pad and its gradient 2 * 3 C e; forward+backward is their sum.
- block: the attention branch of a Swin block, x (B, H, W, C) -> qkv Linear -> window attention -> proj Linear,
  with its weights. Providers: `timm` (timm's SwinTransformerBlock._attn: roll, pad, window_partition,
  WindowAttention with its dense bias + shift mask, window_reverse, roll back, crop; eager), `timm_fused` (the same
  with WindowAttention.fused_attn on: F.scaled_dot_product_attention with the bias and mask as one dense attn_mask;
  PyTorch picks the backend: MATH at these head dims), `reference`, `reference_compiled` (torch.compile of the
  layer) and `triton` (sca_mtl.models.layers.WindowAttention on each backend). timm pads after the roll, so at
  maps that are not multiples of 7 it computes a (slightly) different function: it is timed, not compared.
  Minimal bytes of a fused sub-block: forward reads x and writes y, 2 C e T, plus the weights (4 C^2 + 4 C + heads
  (2w-1)^2) e; backward reads x and dy and writes dx, 3 C e T, plus the weights and their gradients.

Each row also records the GPU work items per call (kernels, memsets, memcpys counted with torch.profiler) and, for
forward+backward, the peak memory allocated by one call beyond the inputs and the least any implementation must
allocate (outputs and gradients) for comparison. Timing, GB/s and the results file: bench/_common.py.

    python bench/bench_window_attention.py              # all shapes, bf16 and fp32
    python bench/bench_window_attention.py --quick      # two shapes, bf16
    python bench/bench_window_attention.py --shapes att-s4-shifted fpma-s8 --dtypes bfloat16 --levels op
    python bench/bench_window_attention.py --dry-run    # CPU: a tiny shape, every provider but torch.compile, once
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import (  # noqa: E402
    RESULTS_DIR,
    Case,
    cuda_or_exit,
    device_slug,
    measure,
    mode_calls,
    plot,
    print_table,
    save,
)

OP = "window_attention"
BATCH = 8
WINDOW = 7
SHIFT = WINDOW // 2


@dataclass(frozen=True)
class Shape:
    name: str
    height: int
    width: int
    num_heads: int
    head_dim: int
    shift: int

    @property
    def channels(self) -> int:
        return self.num_heads * self.head_dim


def _att(stride: int, height: int, width: int, head_dim: int, shift: int) -> Shape:
    return Shape(f"att-s{stride}-{'shifted' if shift else 'unshifted'}", height, width, 6, head_dim, shift)


# ATT: two blocks per scale (unshifted, shifted by 3), 6 heads; FPMA: one unshifted block, 4 heads (KERNELS.md table).
MODEL_SHAPES = (
    *(_att(stride, height, width, head_dim, shift)
      for stride, height, width, head_dim in ((4, 120, 160, 3), (8, 60, 80, 6), (16, 30, 40, 12), (32, 15, 20, 24))
      for shift in (0, SHIFT)),
    Shape("fpma-s8", 60, 80, 4, 54, 0),
    Shape("fpma-s16", 30, 40, 4, 108, 0),
    Shape("fpma-s32", 15, 20, 4, 216, 0),
)
QUICK_SHAPES = (MODEL_SHAPES[1], MODEL_SHAPES[8])  # the largest ATT map (shifted) and the largest FPMA map
DRY_RUN_SHAPE = Shape("dry-run", 9, 10, 2, 3, 3)
DTYPES = (torch.bfloat16, torch.float32)


# ----------------------------------------------------------------------------------------------------------------------
# Providers: name -> (forward callable returning one tensor, the leaves whose gradients the backward computes)
# ----------------------------------------------------------------------------------------------------------------------

Provider = tuple[Callable[[], torch.Tensor], list]


def op_providers(shape: Shape, batch: int, dtype: torch.dtype, device, compile_reference: bool) -> dict:
    from kernels.dispatch import get_op

    tokens = WINDOW * WINDOW
    qkv = torch.randn(batch, shape.height, shape.width, 3 * shape.channels, device=device, dtype=dtype)
    rel_bias = 0.02 * torch.randn(shape.num_heads, tokens, tokens, device=device, dtype=dtype)
    qkv_pad = torch.randn(3 * shape.channels, device=device, dtype=dtype)
    leaves = [t.requires_grad_() for t in (qkv, rel_bias, qkv_pad)]
    kwargs = dict(num_heads=shape.num_heads, window_size=WINDOW, shift_size=shape.shift)
    reference = get_op(OP, "torch")
    implementations = {"reference": reference}
    if compile_reference:
        implementations["reference_compiled"] = torch.compile(reference)
    implementations["triton"] = get_op(OP, "triton")
    return {name: (lambda fn=fn: fn(*leaves, **kwargs), leaves) for name, fn in implementations.items()}


def block_providers(shape: Shape, batch: int, dtype: torch.dtype, device, compile_reference: bool) -> dict:
    from timm.models.swin_transformer import SwinTransformerBlock

    from sca_mtl.models.layers import WindowAttention

    x = torch.randn(batch, shape.height, shape.width, shape.channels, device=device, dtype=dtype, requires_grad=True)
    providers = {}
    for name, fused in (("timm", False), ("timm_fused", True)):
        block = SwinTransformerBlock(shape.channels, (shape.height, shape.width), num_heads=shape.num_heads,
                                     window_size=WINDOW, shift_size=shape.shift, always_partition=True)
        block = block.to(device=device, dtype=dtype)
        block.attn.fused_attn = fused
        providers[name] = (lambda block=block: block._attn(x), [x, *block.attn.parameters()])
    backends = [("reference", "torch", False)]
    if compile_reference:
        backends.append(("reference_compiled", "torch", True))
    backends.append(("triton", "triton", False))
    for name, backend, compiled in backends:
        layer = WindowAttention(shape.channels, shape.num_heads, WINDOW, shape.shift, backend=backend)
        layer = layer.to(device=device, dtype=dtype)
        fn = torch.compile(layer) if compiled else layer
        providers[name] = (lambda fn=fn: fn(x), [x, *layer.parameters()])
    return providers


LEVELS = {"block": block_providers, "op": op_providers}  # block first: its timm columns lead the printed table


# ----------------------------------------------------------------------------------------------------------------------
# Minimal bytes, launches, memory
# ----------------------------------------------------------------------------------------------------------------------


def op_bytes(shape: Shape, batch: int, element: int) -> dict:
    tokens = batch * shape.height * shape.width
    bias = shape.num_heads * (WINDOW * WINDOW) ** 2 * element
    pad = 3 * shape.channels * element
    fwd = 4 * shape.channels * element * tokens + bias + pad
    bwd = 7 * shape.channels * element * tokens + 2 * bias + 2 * pad
    return {"fwd": fwd, "bwd": bwd, "fwdbwd": fwd + bwd}


def block_bytes(shape: Shape, batch: int, element: int) -> dict:
    tokens = batch * shape.height * shape.width
    c = shape.channels
    weights = (4 * c * c + 4 * c + shape.num_heads * (2 * WINDOW - 1) ** 2) * element
    fwd = 2 * c * element * tokens + weights
    bwd = 3 * c * element * tokens + 2 * weights
    return {"fwd": fwd, "bwd": bwd, "fwdbwd": fwd + bwd}


BYTES = {"op": op_bytes, "block": block_bytes}


def gpu_work_items(fn: Callable[[], object]) -> int:
    """Kernels, memsets and memcpys one call puts on the GPU (torch.profiler)."""
    from torch.profiler import ProfilerActivity, profile

    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize()
    return sum(1 for event in prof.events() if event.device_type == torch.autograd.DeviceType.CUDA)


def least_allocation(leaves: list, out: torch.Tensor) -> int:
    """What any forward+backward must allocate: the output and one gradient per leaf."""
    return out.numel() * out.element_size() + sum(t.numel() * t.element_size() for t in leaves)


# ----------------------------------------------------------------------------------------------------------------------
# Runs
# ----------------------------------------------------------------------------------------------------------------------


def run(shapes, dtypes, levels, batch: int, compile_reference: bool) -> list[dict]:
    rows = []
    for shape in shapes:
        for dtype in dtypes:
            element = torch.empty((), dtype=dtype).element_size()
            for level in levels:
                case = Case(op=OP, name=f"{shape.name}/{level}", dtype=dtype, bytes=BYTES[level](shape, batch, element),
                            params=dict(level=level, batch=batch, height=shape.height, width=shape.width,
                                        num_heads=shape.num_heads, head_dim=shape.head_dim, window=WINDOW,
                                        shift=shape.shift))
                providers = LEVELS[level](shape, batch, dtype, "cuda", compile_reference)
                for provider, (forward, leaves) in providers.items():
                    measured = measure(case, provider, forward, leaves)
                    calls = mode_calls(forward, leaves)
                    for row in measured:
                        row["gpu_work_items"] = gpu_work_items(calls[row["mode"]][0])
                        if row["mode"] == "fwdbwd":
                            row["least_allocation_bytes"] = least_allocation(leaves, forward())
                    for leaf in leaves:
                        leaf.grad = None
                    rows.extend(measured)
                    print(f"{case.name} {dtype} {provider}: " + ", ".join(
                        f"{r['mode']} {r['ms']:.4f} ms ({r['gpu_work_items']} items)" for r in measured), flush=True)
    return rows


def dry_run(device: str = "cpu") -> None:
    """Every provider but torch.compile, forward and backward once on a tiny shape; the results must be finite."""
    from kernels._interpret import use_interpreter_without_cuda

    use_interpreter_without_cuda()  # before timm, which imports triton: its language must be the interpreter's
    for level, make_providers in LEVELS.items():
        for provider, (forward, leaves) in make_providers(DRY_RUN_SHAPE, 1, torch.float32, device, False).items():
            out = forward()
            out.backward(torch.randn_like(out))
            grads = [leaf.grad for leaf in leaves if leaf.grad is not None]
            if not torch.isfinite(out).all() or not all(torch.isfinite(g).all() for g in grads) or not grads:
                raise RuntimeError(f"dry run: {level}/{provider} gave non-finite results or no gradients")
            for leaf in leaves:
                leaf.grad = None
    print(f"{Path(__file__).name}: dry run ok ({', '.join(LEVELS)}: every provider but torch.compile)")


def main(argv: list[str] | None = None) -> None:
    shape_names = [shape.name for shape in MODEL_SHAPES]
    dtype_names = {str(dtype).removeprefix("torch."): dtype for dtype in DTYPES}
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="two shapes, bf16 only")
    parser.add_argument("--dry-run", action="store_true", help="CPU check of the providers on a tiny shape")
    parser.add_argument("--shapes", nargs="+", choices=shape_names, default=shape_names)
    parser.add_argument("--dtypes", nargs="+", choices=list(dtype_names), default=list(dtype_names))
    parser.add_argument("--levels", nargs="+", choices=list(LEVELS), default=list(LEVELS))
    parser.add_argument("--no-compile", action="store_true", help="leave out torch.compile (it compiles per shape)")
    args = parser.parse_args(argv)
    if args.dry_run:
        dry_run("cuda" if torch.cuda.is_available() else "cpu")
        return
    cuda_or_exit(__file__)
    if args.quick:
        shapes, dtypes = QUICK_SHAPES, DTYPES[:1]
    else:
        shapes = [shape for shape in MODEL_SHAPES if shape.name in args.shapes]
        dtypes = [dtype_names[name] for name in args.dtypes]
    rows = run(shapes, dtypes, args.levels, BATCH, not args.no_compile)
    print_table(rows)
    path = save(rows)
    plot(rows, RESULTS_DIR / f"{device_slug()}-{OP}.png", OP)
    print(f"results appended to {path}")


if __name__ == "__main__":
    main()
