"""The Triton launchers as PyTorch custom operators (torch.library).

Each Triton op registers its forward and backward launchers as two custom operators, `sca_mtl::<op>_fwd` and
`sca_mtl::<op>_bwd`, with a fake implementation that gives their outputs' shapes, dtypes and strides without
running anything, and the autograd formula registered on the forward operator. torch.compile then treats every
launch as one opaque call: no graph break, no tracing into the launchers' host code (grids, row tables, device
queries), the same kernels as in eager mode, and AOTAutograd places the backward operator in the backward graph.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

NAMESPACE = "sca_mtl"


def custom_op(name: str) -> Callable[[Callable], torch.library.CustomOpDef]:
    """Decorator: the function (type-annotated; it returns new tensors and mutates none of its inputs) becomes the
    operator `sca_mtl::<name>`."""
    return torch.library.custom_op(f"{NAMESPACE}::{name}", mutates_args=())
