import torch


def upcast(t: torch.Tensor) -> torch.Tensor:
    """`t` in float32 at least (float64 stays float64): where the references accumulate and normalise."""
    return t.to(torch.promote_types(t.dtype, torch.float32))
