"""Pure-PyTorch references of the three ops: the readable truth the Triton kernels are tested against, and the
implementation of the `torch` backend. No Triton import; differentiable by autograd; never an L x L matrix."""

from .concat_conv import concat_conv1x1_ref
from .linear_attention import linear_cross_attention_ref
from .window_attention import window_attention_ref

__all__ = ["concat_conv1x1_ref", "linear_cross_attention_ref", "window_attention_ref"]
