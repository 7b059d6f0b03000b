"""One pass of kernels.concat_conv1x1 at the model's aggregation shape (13 segments at 4 resolutions, 1080 -> 1080)
or HRNet's 18+36+72+144 -> 270 head, for Nsight Compute:

    ncu --set full --nvtx --nvtx-include "concat_conv1x1/" -o cc_fwd \
        python profiling/repro_concat_conv.py --case aggregation --pass fwd --dtype bf16
"""

from _repro import leaf, main

import kernels

BATCH = 8
FINE = (120, 160)


def aggregation(dtype):
    """CSAM's inputs: F1, CA1<-2, F1, CA1<-3, F1, CA1<-4, F2, CA2<-3, F2, CA2<-4, F3, CA3<-4, F4."""
    f1, f2, f3, f4 = (leaf(BATCH, c, FINE[0] // s, FINE[1] // s, dtype=dtype)
                      for c, s in ((36, 1), (72, 2), (144, 4), (288, 8)))
    ca1 = [leaf(BATCH, 36, *FINE, dtype=dtype) for _ in range(3)]
    ca2 = [leaf(BATCH, 72, FINE[0] // 2, FINE[1] // 2, dtype=dtype) for _ in range(2)]
    ca3 = leaf(BATCH, 144, FINE[0] // 4, FINE[1] // 4, dtype=dtype)
    inputs = [f1, ca1[0], f1, ca1[1], f1, ca1[2], f2, ca2[0], f2, ca2[1], f3, ca3, f4]
    weight, bias = leaf(1080, 1080, dtype=dtype), leaf(1080, dtype=dtype)
    return (lambda: kernels.concat_conv1x1(inputs, weight, bias)), [*inputs, weight, bias]


def hrnet_head(dtype):
    inputs = [leaf(BATCH, c, FINE[0] // s, FINE[1] // s, dtype=dtype) for c, s in ((18, 1), (36, 2), (72, 4), (144, 8))]
    weight, bias = leaf(270, 270, dtype=dtype), leaf(270, dtype=dtype)
    return (lambda: kernels.concat_conv1x1(inputs, weight, bias, activation="relu")), [*inputs, weight, bias]


if __name__ == "__main__":
    main("concat_conv1x1", __doc__.splitlines()[0], {"aggregation": aggregation, "hrnet_head": hrnet_head})
