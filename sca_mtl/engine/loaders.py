"""Data loaders whose batches depend only on (seed, epoch, position), so that a resumed run sees exactly the
batches the uninterrupted run would have seen, whatever the number of workers.

Every loader has its own torch.Generator: an iterator over a DataLoader draws its workers' base seed from the
loader's generator, or from torch's global RNG when it has none, and that global RNG drives the model's stochastic
depth. Loading (or evaluating) must not shift the model's random stream, or a resumed run would not repeat the
uninterrupted one.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, DistributedSampler

from .distributed import Context


class SeededAugmentation(Dataset):
    """Seeds numpy's global RNG (which the augmentation draws from, as in the released code) from
    (seed, epoch, index) before every sample: its augmentation is then fixed by those three numbers alone, not by
    which worker loads it or what was loaded before."""

    def __init__(self, dataset: Dataset, seed: int):
        self.dataset, self.seed, self.epoch = dataset, seed, 0

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict:
        np.random.seed([self.seed, self.epoch, index])  # noqa: NPY002
        return self.dataset[index]


def steps_per_epoch(num_samples: int, batch_size: int, context: Context) -> int:
    """Full batches per epoch and process (the sampler and the batches drop the remainders, as the released code)."""
    return (num_samples // context.world_size) // batch_size


def train_loader(
    dataset: SeededAugmentation, batch_size: int, epoch: int, skip_batches: int, context: Context, num_workers: int
) -> DataLoader:
    """The shuffled batches of `epoch` for this process, starting after `skip_batches` of them (a resume)."""
    dataset.epoch = epoch
    sampler = DistributedSampler(
        dataset, num_replicas=context.world_size, rank=context.rank, shuffle=True, seed=dataset.seed, drop_last=True
    )
    sampler.set_epoch(epoch)
    batches = list(BatchSampler(list(sampler), batch_size, drop_last=True))[skip_batches:]
    return DataLoader(
        dataset,
        batch_sampler=batches,
        num_workers=num_workers,
        pin_memory=context.device.type == "cuda",
        generator=torch.Generator().manual_seed(dataset.seed),
    )


def eval_loader(dataset: Dataset, batch_size: int, context: Context, num_workers: int) -> DataLoader:
    """Every sample exactly once over all processes (no padding duplicates, unlike DistributedSampler)."""
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=range(context.rank, len(dataset), context.world_size),
        num_workers=num_workers,
        pin_memory=context.device.type == "cuda",
        generator=torch.Generator(),
    )


def to_device(batch: dict, device: torch.device) -> tuple[torch.Tensor, dict]:
    """(images, {task: target}) on `device`; the batch's "meta" stays behind."""
    images = batch["image"].to(device, non_blocking=True)
    targets = {key: value.to(device, non_blocking=True) for key, value in batch.items() if key not in ("image", "meta")}
    return images, targets
