"""sca-mtl: SCA-MTL (Sequential Cross Attention Multi-Task Learning, ICIP 2022) for dense scene understanding."""

# First, before timm imports triton: without CUDA, `kernels` switches Triton to its interpreter (kernels/_interpret.py).
import kernels  # noqa: F401

__version__ = "0.1.0"
