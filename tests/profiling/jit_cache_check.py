"""Whether the JIT, at its first launch on an sm_90 device, finds what profiling/compile_cache.py put in Triton's cache.

Run by tests/profiling/test_compile_cache.py in a fresh process with TRITON_INTERPRET=0 and an empty TRITON_CACHE_DIR:
    python -m tests.profiling.jit_cache_check CASE H W BATCH [--cold]

Fills the cache with the launches of the op call CASE (bf16, the model at H x W, batch BATCH; not with --cold, the
control), then runs the call through `JITFunction.run` itself, unpatched, in its warm-up mode (compile, no launch)
with Triton's active driver replaced by one that answers as an H100 would (device 0, target cuda sm_90): on a cache
miss the JIT compiles and adds an entry. Prints one JSON line: the launches compiled ahead, the kernels the JIT then
holds and the entries it added.
"""

import json
import sys


def main(case: str, height: int, width: int, batch: int, cold: bool) -> None:
    import torch
    from triton.runtime.jit import JITFunction

    import kernels
    from bench.shapes import make_args, model_op_calls
    from profiling import host_time, static_report
    from profiling.compile_cache import cache_entries, fill

    (call,) = [c for c in model_op_calls(size=(height, width), batch=batch) if c.case == case]
    ahead = None if cold else fill([call], ["bf16"], workers=1)
    entries = cache_entries()
    static_report.bypass_device_checks()
    compiled = {}
    original_getitem = JITFunction.__getitem__

    def warm_up(kernel, grid):  # the JIT's own run, compiling without launching
        def run(*args, **kwargs):
            compiled[kernel.__name__] = kernel.run(*args, grid=grid, warmup=True, **kwargs)
        return run

    JITFunction.__getitem__ = warm_up
    try:
        with host_time.sm90_driver():
            args, kwargs = make_args(call, torch.bfloat16, "cpu", requires_grad=True)
            out = kernels.get_op(call.op, "triton")(*args, **kwargs)
            torch.autograd.grad(out, host_time.leaf_tensors(args, kwargs), torch.empty_like(out))
    finally:
        JITFunction.__getitem__ = original_getitem
    print(json.dumps({"ahead": ahead, "jit_kernels": sorted(name for name, k in compiled.items() if k is not None),
                      "jit_entries_added": cache_entries() - entries}))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), cold="--cold" in sys.argv[5:])
