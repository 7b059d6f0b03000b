"""Reference of `kernels.linear_cross_attention`: softmax-free kernelised (linear) cross attention.

For a batch element, with phi the feature map (softplus, or identity) applied to the pre-activations q and k,

    out[:, i] = sum_a (phi(q_i) . phi(k_a)) v_a / max(sum_a phi(q_i) . phi(k_a), eps)
              = S phi(q_i) / max(z . phi(q_i), eps),   S = sum_a v_a phi(k_a)^T  (E x D),  z = sum_a phi(k_a)  (D)

so the cost is linear in the lengths: the source is reduced to the state (S, z) once, then every target token
reads it. Query and source lengths may differ (cross-scale attention). Computed in float32 (the state summed over
up to 19,200 tokens overflows float16), returned in the input dtype.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .._autocast import autocast_aware
from .._checks import Stackable, check_linear_cross_attention
from ._precision import upcast

FEATURE_MAP_FUNCTIONS = {"softplus": F.softplus, "identity": lambda x: x}


@autocast_aware
def linear_cross_attention_ref(
    q: Stackable, k: Stackable, v: Stackable, *, feature_map: str = "softplus", eps: float = 1e-12
) -> torch.Tensor:
    """q: (B, D, Lq) and k: (B, D, Ls) pre-activations, v: (B, E, Ls) values -> (B, E, Lq). Each of q, k, v may
    also be a sequence of parts of one shape: the call on their concatenation along the batch."""
    q, k, v = (parts[0] if len(parts) == 1 else torch.cat(parts)
               for parts in check_linear_cross_attention(q, k, v, feature_map, eps))
    phi = FEATURE_MAP_FUNCTIONS[feature_map]
    phi_q, phi_k = phi(upcast(q)), phi(upcast(k))
    state = torch.bmm(upcast(v), phi_k.transpose(1, 2))  # S: (B, E, D)
    normaliser = phi_k.sum(dim=2, keepdim=True)  # z: (B, D, 1)
    numerator = torch.bmm(state, phi_q)  # (B, E, Lq)
    denominator = (normaliser * phi_q).sum(dim=1, keepdim=True)  # (B, 1, Lq)
    return (numerator / denominator.clamp_min(eps)).to(q.dtype)
