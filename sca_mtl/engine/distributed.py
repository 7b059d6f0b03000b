"""Single-process or DDP under torchrun: who this process is, and the few collective operations the loops need."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Context:
    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """Only the main process writes files and shows progress."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def setup() -> Context:
    """Read torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK) and join the process group: NCCL on GPUs, gloo on
    CPUs. Without torchrun: one process, on the GPU when there is one."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return Context(0, 1, torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank)
        device, backend = torch.device("cuda", local_rank), "nccl"
    else:
        device, backend = torch.device("cpu"), "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend)
    return Context(rank, world_size, device)


def teardown(context: Context) -> None:
    if context.distributed and dist.is_initialized():
        dist.destroy_process_group()


def broadcast_buffers(model: torch.nn.Module, context: Context) -> None:
    """Every process gets the main process's buffers (BatchNorm running statistics). DDP broadcasts them at each
    forward, but each process's last forward updates its own: this makes the model every process evaluates the one
    the main process saves."""
    if context.distributed:
        for buffer in model.buffers():
            dist.broadcast(buffer, src=0)


def all_reduce_mean(values: torch.Tensor, context: Context) -> torch.Tensor:
    """Mean over processes of a tensor of logged values (one collective for all of them)."""
    if context.distributed:
        values = values.clone()
        dist.all_reduce(values)
        values /= context.world_size
    return values
