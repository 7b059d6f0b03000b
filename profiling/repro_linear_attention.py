"""One pass of kernels.linear_cross_attention as the model calls it at batch 8 (CTAM: 6 task pairs stacked along the
batch; CSAM: 3 tasks), for Nsight Compute:

    ncu --set full --nvtx --nvtx-include "linear_cross_attention/" -o la_fwd \
        python profiling/repro_linear_attention.py --case ctam_19200x36 --pass fwd --dtype bf16
"""

from _repro import leaf, main

import kernels

BATCH = 8
CTAM_PAIRS, CSAM_TASKS = 6, 3
CASES_SHAPES = {  # name -> (attentions stacked, channels, target tokens, source tokens)
    "ctam_19200x36": (CTAM_PAIRS, 36, 19200, 19200),
    "csam_19200_from_4800": (CSAM_TASKS, 36, 19200, 4800),
    "ctam_300x288": (CTAM_PAIRS, 288, 300, 300),
}


def case(stacked: int, channels: int, target: int, source: int):
    batch = BATCH * stacked

    def build(dtype):
        q = leaf(batch, channels, target, dtype=dtype)
        k, v = leaf(batch, channels, source, dtype=dtype), leaf(batch, channels, source, dtype=dtype)
        return (lambda: kernels.linear_cross_attention(q, k, v)), [q, k, v]

    return build


if __name__ == "__main__":
    main("linear_cross_attention", __doc__.splitlines()[0], {name: case(*s) for name, s in CASES_SHAPES.items()})
