"""One pass of one op at one of the model's calls, once, inside an NVTX range named after the op (after warm-up calls
that compile the kernels), for Nsight Compute. The calls are the model's own (bench/shapes.py):

    ncu --set full --nvtx --nvtx-include "window_attention/" -o wa_att_bwd \
        python profiling/repro.py --case window_attention/120x160-c18-h6-shift3 --pass bwd --dtype bf16
    python profiling/repro.py --list      # every case: op/name, with the calls per training step
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import kernels  # noqa: E402
from bench.shapes import make_args, model_op_calls  # noqa: E402

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
WARMUP_CALLS = 2  # compile the kernels before the profiled launch


def main(argv=None) -> None:
    calls = {call.case: call for call in model_op_calls()}
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=list(calls), default=next(iter(calls)), metavar="OP/CASE")
    parser.add_argument("--pass", dest="which", choices=["fwd", "bwd"], default="fwd")
    parser.add_argument("--dtype", choices=list(DTYPES), default="bf16")
    parser.add_argument("--backend", choices=list(kernels.BACKENDS), default="triton")
    parser.add_argument("--list", action="store_true", help="print the cases and exit")
    args = parser.parse_args(argv)
    if args.list:
        for call in calls.values():
            print(f"{call.case}  ({call.count} per forward pass)")
        return
    if not torch.cuda.is_available():
        sys.exit("profiling/repro.py needs a CUDA device (a single-launch repro for Nsight Compute)")
    call = calls[args.case]
    inputs, options = make_args(call, DTYPES[args.dtype], "cuda", requires_grad=True)
    op = kernels.get_op(call.op, args.backend)
    for _ in range(WARMUP_CALLS):
        out = op(*inputs, **options)
        out.backward(torch.randn_like(out))
    out = op(*inputs, **options)
    upstream = torch.randn_like(out)
    torch.cuda.synchronize()
    with torch.cuda.nvtx.range(call.op):
        if args.which == "fwd":
            op(*inputs, **options)
        else:
            out.backward(upstream)
    torch.cuda.synchronize()
    print(f"{call.op}: one {args.which} pass of {call.case} ({args.dtype}, {args.backend})")


if __name__ == "__main__":
    main()
