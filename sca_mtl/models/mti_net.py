"""MTI-Net (Vandenhende, Georgoulis, Van Gool, ECCV 2020) on the HRNet backbone, as its code builds it (`mti_net`;
MODEL_SPEC.md 5.4): SCA-MTL's skeleton with none of SCA-MTL's parts, i.e. Table 5's baseline row.

    for k = 3, 2, 1, 0 (coarse to fine):
          F_t^k, p_t^k = ScaleHead_t([F̄k, up2(G_t^{k+1})])            (p_t^k: deep supervision)
          G_t^k      = FPM_k({F_t^k})   for k > 0                     (propagation, convolutional gate)
          F̂_t^k      = F_t^k + Σ_{a != t} SA_{t<-a}(F_a^k)             (multi-modal distillation per scale)
    p_t = up4(HighResolutionHead_t(F̂_t^0..3))

Auxiliary tasks (its configs' `auxilary_task_dictionary` beyond the main tasks) get the scale heads, propagation and
distillation sources, not a final head: predicted as deep supervision only.
"""

from __future__ import annotations

from collections.abc import Mapping

from torch import nn

from .registry import register_model
from .sca_mtl import SCAMTL


@register_model("mti_net")
class MTINet(SCAMTL):
    def __init__(
        self, tasks: Mapping[str, int], backbone: nn.Module, *, auxiliary_tasks: Mapping[str, int] | None = None,
        backend: str,
    ):
        super().__init__(tasks, backbone, att=False, fpma=False, ctam=False, csam=False,
                         auxiliary_tasks=auxiliary_tasks, backend=backend)
