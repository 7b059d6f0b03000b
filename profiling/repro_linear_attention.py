"""One pass of kernels.linear_cross_attention at a model shape, for Nsight Compute:

    ncu --set full --nvtx --nvtx-include "linear_cross_attention/" -o la_fwd \
        python profiling/repro_linear_attention.py --case self_19200x36 --pass fwd --dtype bf16
"""

from _repro import leaf, main

import kernels

BATCH = 8
CASES_SHAPES = {  # name -> (channels, target tokens, source tokens)
    "self_19200x36": (36, 19200, 19200),
    "cross_19200_from_4800": (36, 19200, 4800),
    "self_300x288": (288, 300, 300),
}


def case(channels: int, target: int, source: int):
    def build(dtype):
        q = leaf(BATCH, channels, target, dtype=dtype)
        k, v = leaf(BATCH, channels, source, dtype=dtype), leaf(BATCH, channels, source, dtype=dtype)
        return (lambda: kernels.linear_cross_attention(q, k, v)), [q, k, v]

    return build


if __name__ == "__main__":
    main("linear_cross_attention", __doc__.splitlines()[0], {name: case(*s) for name, s in CASES_SHAPES.items()})
