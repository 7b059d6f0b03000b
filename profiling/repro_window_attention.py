"""One pass of kernels.window_attention at a model shape, for Nsight Compute:

    ncu --set full --nvtx --nvtx-include "window_attention/" -o wa_fwd \
        python profiling/repro_window_attention.py --case att_120x160_shift3 --pass fwd --dtype bf16
"""

from _repro import leaf, main

import kernels

BATCH, WINDOW = 8, 7
CASES_SHAPES = {  # name -> (height, width, channels, heads, shift)
    "att_120x160_shift3": (120, 160, 18, 6, 3),
    "att_120x160": (120, 160, 18, 6, 0),
    "fpma_60x80": (60, 80, 216, 4, 0),
    "fpma_15x20": (15, 20, 864, 4, 0),
}


def case(height: int, width: int, channels: int, heads: int, shift: int):
    def build(dtype):
        qkv = leaf(BATCH, height, width, 3 * channels, dtype=dtype)
        bias = leaf(heads, WINDOW**2, WINDOW**2, dtype=dtype)
        pad = leaf(3 * channels, dtype=dtype)
        call = lambda: kernels.window_attention(qkv, bias, pad, num_heads=heads, window_size=WINDOW,  # noqa: E731
                                                shift_size=shift)
        return call, [qkv, bias, pad]

    return build


if __name__ == "__main__":
    main("window_attention", __doc__.splitlines()[0], {name: case(*s) for name, s in CASES_SHAPES.items()})
