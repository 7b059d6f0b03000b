"""One pass of kernels.linear_cross_attention as the model calls it at batch 8 (the benchmark's shapes: a CTAM
scale's 6 task pairs stacked along the batch, the 3 tasks' CSAM attentions likewise), for Nsight Compute:

    ncu --set full --nvtx --nvtx-include "linear_cross_attention/" -o la_fwd \
        python profiling/repro_linear_attention.py --case ctam-19200x36 --pass fwd --dtype bf16
"""

from _repro import leaf, main

import kernels
from bench.bench_linear_attention import BATCH, SHAPES, Shape


def case(shape: Shape):
    batch = BATCH * shape.stacked

    def build(dtype):
        q = leaf(batch, shape.width, shape.lq, dtype=dtype)
        k, v = (leaf(batch, shape.width, shape.ls, dtype=dtype) for _ in range(2))
        return (lambda: kernels.linear_cross_attention(q, k, v)), [q, k, v]

    return build


if __name__ == "__main__":
    main("linear_cross_attention", __doc__.splitlines()[0], {shape.name: case(shape) for shape in SHAPES})
