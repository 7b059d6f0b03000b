"""What every repro_<op>.py shares: one launch of one pass of an op at one of the model's shapes, bracketed by an
NVTX range named after the op, for Nsight Compute (`ncu --nvtx --nvtx-include "<op>/" ...`)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import kernels  # noqa: E402

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
WARMUP_CALLS = 2  # compile the kernels before the profiled launch


def main(op: str, description: str, cases: Mapping[str, Callable[[torch.dtype], tuple]], argv=None) -> None:
    """`cases` maps a case name to a function building (call, leaves) for a dtype: `call()` runs the op forward."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--case", choices=list(cases), default=next(iter(cases)))
    parser.add_argument("--pass", dest="which", choices=["fwd", "bwd"], default="fwd")
    parser.add_argument("--dtype", choices=list(DTYPES), default="bf16")
    parser.add_argument("--backend", choices=list(kernels.BACKENDS), default="triton")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        sys.exit(f"{op}: needs a CUDA device (a single-launch repro for Nsight Compute)")
    call, _ = cases[args.case](DTYPES[args.dtype])
    with kernels.use_backend(args.backend):
        for _ in range(WARMUP_CALLS):
            out = call()
            out.backward(torch.randn_like(out))
        out = call()
        upstream = torch.randn_like(out)
        torch.cuda.synchronize()
        with torch.cuda.nvtx.range(op):
            if args.which == "fwd":
                call()
            else:
                out.backward(upstream)
        torch.cuda.synchronize()
    print(f"{op}: one {args.which} pass of case {args.case} ({args.dtype}, {args.backend})")


def leaf(*shape: int, dtype: torch.dtype) -> torch.Tensor:
    return torch.randn(*shape, device="cuda", dtype=dtype, requires_grad=True)
