"""DenseMTL's multi-task exchange block (mTEB, Lopes, Vu, de Charette, WACV 2023), as its released code computes it
(../shared/DENSEMTL_SPEC.md 1.4), with its two defects fixed: the sources of each target in sorted order (the released
code iterates a Python set, whose order changes with the hash seed between processes), and the correlation-guided
attention through fused scaled-dot-product attention, all T(T-1) directed pairs in one call, never materialising the
N x N matrix.

For every ordered pair s -> t (its own weights), on maps of C channels whose sides are multiples of the pooling p:

    E        = ReLU(conv3x3(F_s) + b)                                        (extractor)
    SA       = conv3x3(E) ⊙ sigmoid(conv3x3'(E))                             (C -> C/2, no biases)
    Q        = ReLU(BN(conv1x1(F_t[::p, ::p])))   K, V = ReLU(BN(conv1x1(maxpool_p(E))))     (N = hw / p² tokens)
    O        = α ⊙ up_p(V softmax(QᵀK / √C)ᵀ)                                 (α per channel, zero at initialisation)
    f_{s->t} = ReLU(BN(conv1x1([SA, O])))                                    (3C/2 -> C)
and for every target t:
    F̂_t      = F_t + ReLU(BN(conv1x1([f_{s->t} for s != t, sorted])))        ((T-1) C -> C)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import conv_bn
from .distillation import SpatialAttention


class DirectedExchange(nn.Module):
    """One ordered pair's xTAM. `project(target, source)` gives its attention inputs, `merge` its message."""

    def __init__(self, channels: int, pool: int):
        super().__init__()
        self.pool = pool
        self.extract = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU())
        self.gate = SpatialAttention(channels, channels // 2)
        self.query, self.key, self.value = (conv_bn(channels, channels, relu=True) for _ in range(3))
        self.alpha = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.merge = conv_bn(channels + channels // 2, channels, relu=True)

    def project(self, target: torch.Tensor, source: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(gated source (B, C/2, h, w), q, k, v each (B, N, C)): the query from the target's pixel at each p x p
        block's corner, keys and values from the block maxima of the extracted source (the released asymmetry)."""
        extracted = self.extract(source)
        pooled = F.max_pool2d(extracted, self.pool)
        q, k, v = self.query(target[:, :, ::self.pool, ::self.pool]), self.key(pooled), self.value(pooled)
        return (self.gate(extracted), *(x.flatten(2).transpose(1, 2) for x in (q, k, v)))

    def message(self, gated: torch.Tensor, attended: torch.Tensor) -> torch.Tensor:
        """f_{s->t} from the gated source and the attention output (B, C, h/p, w/p)."""
        correlated = F.interpolate(attended, scale_factor=self.pool, mode="nearest") * self.alpha
        return self.merge(torch.cat([gated, correlated], dim=1))


class ExchangeBlock(nn.Module):
    """forward({task: F_t (B, C, h, w)}) -> {task: F̂_t}; h and w multiples of `pool`."""

    def __init__(self, tasks: Sequence[str], channels: int, pool: int):
        super().__init__()
        if len(tasks) < 2:
            raise ValueError(f"the exchange needs at least two tasks, got {list(tasks)}")
        self.tasks = sorted(tasks)
        self.pool = pool
        self.pairs = [(source, target) for target in self.tasks for source in self.tasks if source != target]
        self.exchange = nn.ModuleDict({f"{s}_to_{t}": DirectedExchange(channels, pool) for s, t in self.pairs})
        self.fuse = nn.ModuleDict(
            {t: conv_bn((len(self.tasks) - 1) * channels, channels, relu=True) for t in self.tasks}
        )

    def forward(self, features: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        height, width = next(iter(features.values())).shape[2:]
        if height % self.pool or width % self.pool:
            raise ValueError(f"the exchange's maps must have sides that are multiples of {self.pool}, got "
                             f"{height}x{width}")
        layers = [self.exchange[f"{s}_to_{t}"] for s, t in self.pairs]
        gated, q, k, v = zip(*(layer.project(features[t], features[s]) for layer, (s, t) in zip(layers, self.pairs)))
        # every pair's attention has one shape: one fused call, pairs stacked on the batch, one head of width C
        attended = F.scaled_dot_product_attention(*(torch.cat(x)[:, None] for x in (q, k, v)))[:, 0]
        grid = (attended.shape[-1], height // self.pool, width // self.pool)
        attended = attended.transpose(1, 2).reshape(-1, *grid).chunk(len(self.pairs))
        messages = {pair: layer.message(g, a) for pair, layer, g, a in zip(self.pairs, layers, gated, attended)}
        return {
            t: features[t] + self.fuse[t](torch.cat([messages[s, t] for s in self.tasks if s != t], dim=1))
            for t in self.tasks
        }
