"""One optimisation step of a multi-task model: the unit that training, the training-step benchmark and the profiler
all run."""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from ..losses import TOTAL
from ..tasks import IGNORE_LABEL, TASKS
from .precision import autocast


class TrainingStep:
    """forward under autocast (when `amp` is a dtype), the multi-task loss, backward through the grad scaler (active
    for float16 only), optimiser step. Calling it returns the loss dict (tensors, not synced to the host)."""

    def __init__(self, network: nn.Module, criterion: nn.Module, optimizer: torch.optim.Optimizer,
                 amp: torch.dtype | None, device: torch.device):
        self.network, self.criterion, self.optimizer, self.amp, self.device = network, criterion, optimizer, amp, device
        self.scaler = torch.amp.GradScaler(device.type, enabled=amp == torch.float16)

    def __call__(self, images: torch.Tensor, targets: Mapping[str, torch.Tensor]) -> dict:
        with autocast(self.device, self.amp):
            outputs = self.network(images)
            losses = self.criterion(outputs, targets)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(losses[TOTAL]).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return losses


def random_batch(tasks: Mapping[str, int], batch: int, size: tuple[int, int], device: torch.device,
                 generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict]:
    """A normalised image batch and valid targets of every task, drawn at random (benchmarks and profiles need the
    shapes and the work, not the data). A few pixels of each target are marked ignored, as real labels have."""
    height, width = size

    def rand(*shape):
        return torch.rand(*shape, generator=generator).to(device)

    images = torch.randn(batch, 3, height, width, generator=generator).to(device)
    ignore = rand(batch, 1, height, width) < 0.05
    targets = {}
    for task, channels in tasks.items():
        kind = TASKS[task].kind
        if kind == "segmentation":
            target = torch.randint(channels, (batch, height, width), generator=generator).to(device)
            target = target.masked_fill(ignore[:, 0], IGNORE_LABEL)
        elif kind == "normals":
            target = F.normalize(torch.randn(batch, 3, height, width, generator=generator), dim=1).to(device)
            target = target.masked_fill(ignore, IGNORE_LABEL)
        elif kind == "depth":
            target = (0.5 + 9.5 * rand(batch, 1, height, width)).masked_fill(ignore, IGNORE_LABEL)
        else:
            target = (rand(batch, 1, height, width) > 0.5).float().masked_fill(ignore, IGNORE_LABEL)
        targets[task] = target
    return images, targets
