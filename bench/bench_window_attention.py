"""Benchmark of kernels.window_attention (KERNELS.md B.8) at the model's eleven calls (bench/shapes.py: NYUD-v2
480 x 640, batch 8, window 7).

Two levels, each with its providers side by side, forward, backward (from a retained graph) and forward+backward:

- op: (qkv, rel_bias, qkv_pad) -> out (B, H, W, C). Providers: `reference` (the eager torch reference),
  `reference_compiled` (torch.compile of it), `triton`, and the two anchors a user would pick instead, each with the
  pad / roll / partition / merge copies around it that it needs: `sdpa` (F.scaled_dot_product_attention on
  (B nW, heads, N, d) windows with the bias, plus the shift mask where shifted, as one additive attn_mask in q's
  dtype, expanded per window as timm does; PyTorch picks the backend) and `flex` (torch.compile of FlexAttention
  over the map's windows as one sequence per image and head: a block-diagonal block mask, which also carries the
  shift regions, and a score_mod adding the bias; head dims zero-padded to a power of two >= 16; a masked pair gets
  -inf instead of Swin's -100, which exp() cannot tell apart). Minimal bytes (e = bytes per element, T = B H W tokens,
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
    python bench/bench_window_attention.py --shapes window_attention/120x160-c18-h6-shift3 --dtypes bfloat16 \
        --levels op
    python bench/bench_window_attention.py --dry-run    # CPU: a tiny shape, every provider but torch.compile, once
"""

from __future__ import annotations

import argparse
import functools
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

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
from bench.shapes import OpCall, model_op_calls  # noqa: E402
from kernels.reference.window_attention import merged_windows, windowed_qkv  # noqa: E402

OP = "window_attention"
WINDOW = 7


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


def shape_of(call: OpCall) -> Shape:
    """The benchmark's Shape of one of the model's window-attention calls (its batch: `call.tensors[0][0]`)."""
    _, height, width, three_c = call.tensors[0]
    kwargs = dict(call.kwargs)
    if kwargs["window_size"] != WINDOW:
        raise ValueError(f"{call.case}: the byte counts assume window {WINDOW}, got {kwargs['window_size']}")
    heads = kwargs["num_heads"]
    return Shape(call.case, height, width, heads, three_c // (3 * heads), kwargs.get("shift_size", 0))


def model_calls() -> list[OpCall]:
    return [call for call in model_op_calls() if call.op == OP]


def quick_calls(calls: list[OpCall]) -> list[OpCall]:
    """The largest shifted call and the largest unshifted one."""
    shifted = [call for call in calls if dict(call.kwargs).get("shift_size")]
    unshifted = [call for call in calls if call not in shifted]
    return [max(group, key=lambda call: math.prod(call.tensors[0])) for group in (shifted, unshifted)]


DRY_RUN_SHAPE = Shape("dry-run", 9, 10, 2, 3, 3)
DTYPES = (torch.bfloat16, torch.float32)


# ----------------------------------------------------------------------------------------------------------------------
# Providers: name -> (forward callable returning one tensor, the leaves whose gradients the backward computes)
# ----------------------------------------------------------------------------------------------------------------------

Provider = tuple[Callable[[], torch.Tensor], list]


def op_providers(shape: Shape, batch: int, dtype: torch.dtype, device, compile_backend: str | None) -> dict:
    """Provider -> (forward, leaves), the inputs shared; torch.compile'd providers (`reference_compiled`, `flex`)
    only with a `compile_backend`."""
    from kernels.dispatch import get_op

    tokens = WINDOW * WINDOW
    qkv = torch.randn(batch, shape.height, shape.width, 3 * shape.channels, device=device, dtype=dtype)
    rel_bias = 0.02 * torch.randn(shape.num_heads, tokens, tokens, device=device, dtype=dtype)
    qkv_pad = torch.randn(3 * shape.channels, device=device, dtype=dtype)
    leaves = [t.requires_grad_() for t in (qkv, rel_bias, qkv_pad)]
    kwargs = dict(num_heads=shape.num_heads, window_size=WINDOW, shift_size=shape.shift)
    reference = get_op(OP, "torch")
    implementations = {"reference": reference}
    if compile_backend:
        implementations["reference_compiled"] = torch.compile(reference, backend=compile_backend, dynamic=False)
    implementations["triton"] = get_op(OP, "triton")
    implementations["sdpa"] = sdpa_window_attention
    if compile_backend:
        implementations["flex"] = FlexWindowAttention(compile_backend)
    return {name: (lambda fn=fn: fn(*leaves, **kwargs), leaves) for name, fn in implementations.items()}


def call_providers(call: OpCall, dtype: torch.dtype, device, compile_backend: str | None = None) -> dict:
    """`op_providers` at one of the model's calls."""
    return op_providers(shape_of(call), call.tensors[0][0], dtype, device, compile_backend)


def block_providers(shape: Shape, batch: int, dtype: torch.dtype, device, compile_backend: str | None) -> dict:
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
    if compile_backend:
        backends.append(("reference_compiled", "torch", True))
    backends.append(("triton", "triton", False))
    for name, backend, compiled in backends:
        layer = WindowAttention(shape.channels, shape.num_heads, WINDOW, shape.shift, backend=backend)
        layer = layer.to(device=device, dtype=dtype)
        fn = torch.compile(layer, backend=compile_backend) if compiled else layer
        providers[name] = (lambda fn=fn: fn(x), [x, *layer.parameters()])
    return providers


LEVELS = {"block": block_providers, "op": op_providers}  # block first: its timm columns lead the printed table


# ----------------------------------------------------------------------------------------------------------------------
# The anchors: what a user would write with SDPA or FlexAttention
# ----------------------------------------------------------------------------------------------------------------------




def _window_regions(padded: tuple, window_size: int, shift_size: int, device) -> torch.Tensor:
    """(nW, N) shift-region id of every token of every window (kernels/reference/window_attention.py)."""
    from kernels.reference.window_attention import _partition, shift_region_ids

    return _partition(shift_region_ids(*padded, window_size, shift_size, device)[None], window_size)[0]


def sdpa_window_attention(qkv, rel_bias, qkv_pad, *, num_heads: int, window_size: int, shift_size: int = 0):
    """F.scaled_dot_product_attention per window, the bias (+ the -100 shift mask) as one attn_mask in q's dtype."""
    q, k, v, padded = windowed_qkv(qkv, qkv_pad, num_heads, window_size, shift_size)
    batch, windows, heads, tokens, head_dim = q.shape
    mask = rel_bias.to(q.dtype)[None]  # (1, heads, N, N): broadcast over the windows
    if shift_size:
        regions = _window_regions(padded, window_size, shift_size, qkv.device)
        shift = (regions[:, :, None] != regions[:, None, :]).to(q.dtype) * -100.0  # (nW, N, N)
        mask = (mask + shift[:, None]).expand(batch, -1, -1, -1, -1).reshape(batch * windows, heads, tokens, tokens)
    out = F.scaled_dot_product_attention(*(t.reshape(batch * windows, heads, tokens, head_dim) for t in (q, k, v)),
                                         attn_mask=mask)
    out = out.view(batch, windows, heads, tokens, head_dim)
    return merged_windows(out, padded, qkv.shape[1:3], window_size, shift_size)


class FlexWindowAttention:
    """torch.compile'd FlexAttention over each image's windows laid end to end ((B, heads, nW N, d) sequences): the
    block mask keeps every token in its window (and shifted region), the score_mod adds the bias. Block masks are
    built once per map size (on the first call, outside the timed ones). FlexAttention is imported on the first call:
    a torch without it fails that call, not the construction of the other providers."""

    def __init__(self, compile_backend: str):
        self._compile_backend = compile_backend
        self._block_masks: dict = {}

    @functools.cached_property
    def _flex(self):
        from torch.nn.attention.flex_attention import flex_attention

        return torch.compile(flex_attention, backend=self._compile_backend, dynamic=False)

    def __call__(self, qkv, rel_bias, qkv_pad, *, num_heads: int, window_size: int, shift_size: int = 0):
        q, k, v, padded = windowed_qkv(qkv, qkv_pad, num_heads, window_size, shift_size)
        batch, windows, heads, tokens, head_dim = q.shape
        width = max(16, 1 << (head_dim - 1).bit_length())  # FlexAttention's head dims: powers of two >= 16

        def sequence(t):
            return F.pad(t.transpose(1, 2).reshape(batch, heads, windows * tokens, head_dim), (0, width - head_dim))

        def score_mod(score, b, h, q_idx, kv_idx):
            return score + rel_bias[h, q_idx % tokens, kv_idx % tokens]

        key = (padded, window_size, shift_size, qkv.device)
        if key not in self._block_masks:
            self._block_masks[key] = self._block_mask(padded, window_size, shift_size, qkv.device)
        out = self._flex(sequence(q), sequence(k), sequence(v), score_mod=score_mod, block_mask=self._block_masks[key],
                         scale=head_dim**-0.5)
        out = out[..., :head_dim].reshape(batch, heads, windows, tokens, head_dim).transpose(1, 2)
        return merged_windows(out, padded, qkv.shape[1:3], window_size, shift_size)

    def _block_mask(self, padded: tuple, window_size: int, shift_size: int, device):
        from torch.nn.attention.flex_attention import create_block_mask

        regions = _window_regions(padded, window_size, shift_size, device).flatten()
        tokens = window_size * window_size

        def same_window_and_region(b, h, q_idx, kv_idx):
            return (q_idx // tokens == kv_idx // tokens) & (regions[q_idx] == regions[kv_idx])

        return create_block_mask(same_window_and_region, None, None, regions.numel(), regions.numel(), device=device)


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


def run(calls: list[OpCall], dtypes, levels, compile_backend: str | None) -> list[dict]:
    rows = []
    for call in calls:
        shape, batch = shape_of(call), call.tensors[0][0]
        for dtype in dtypes:
            element = torch.empty((), dtype=dtype).element_size()
            for level in levels:
                case = Case(op=OP, name=f"{shape.name}/{level}", dtype=dtype, bytes=BYTES[level](shape, batch, element),
                            params=dict(level=level, batch=batch, height=shape.height, width=shape.width,
                                        num_heads=shape.num_heads, head_dim=shape.head_dim, window=WINDOW,
                                        shift=shape.shift))
                providers = LEVELS[level](shape, batch, dtype, "cuda", compile_backend)
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
        for provider, (forward, leaves) in make_providers(DRY_RUN_SHAPE, 1, torch.float32, device, None).items():
            out = forward()
            out.backward(torch.randn_like(out))
            grads = [leaf.grad for leaf in leaves if leaf.grad is not None]
            if not torch.isfinite(out).all() or not all(torch.isfinite(g).all() for g in grads) or not grads:
                raise RuntimeError(f"dry run: {level}/{provider} gave non-finite results or no gradients")
            for leaf in leaves:
                leaf.grad = None
    print(f"{Path(__file__).name}: dry run ok ({', '.join(LEVELS)}: every provider but torch.compile)")


def main(argv: list[str] | None = None) -> None:
    calls = model_calls()
    call_names = [call.case for call in calls]
    dtype_names = {str(dtype).removeprefix("torch."): dtype for dtype in DTYPES}
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="two shapes, bf16 only")
    parser.add_argument("--dry-run", action="store_true", help="CPU check of the providers on a tiny shape")
    parser.add_argument("--shapes", nargs="+", choices=call_names, default=call_names, metavar="CASE",
                        help="model calls (bench/shapes.py), e.g. window_attention/120x160-c18-h6-shift3")
    parser.add_argument("--dtypes", nargs="+", choices=list(dtype_names), default=list(dtype_names))
    parser.add_argument("--levels", nargs="+", choices=list(LEVELS), default=list(LEVELS))
    parser.add_argument("--no-compile", action="store_true", help="leave out torch.compile (it compiles per shape)")
    args = parser.parse_args(argv)
    if args.dry_run:
        dry_run("cuda" if torch.cuda.is_available() else "cpu")
        return
    cuda_or_exit(__file__)
    if args.quick:
        calls, dtypes = quick_calls(calls), DTYPES[:1]
    else:
        calls = [call for call in calls if call.case in args.shapes]
        dtypes = [dtype_names[name] for name in args.dtypes]
    rows = run(calls, dtypes, args.levels, None if args.no_compile else "inductor")
    print_table(rows)
    path = save(rows)
    plot(rows, RESULTS_DIR / f"{device_slug()}-{OP}.png", OP)
    print(f"results appended to {path}")


if __name__ == "__main__":
    main()
