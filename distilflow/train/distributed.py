"""Data-parallel training across processes, decided once from the environment `torchrun` sets.

`torchrun --nproc_per_node=8 -m distilflow distill` (or `--nnodes=2 --rdzv_endpoint=host:29500 ...`)
runs one process per GPU; a plain `distilflow distill` is one process. Nothing else changes: the
global batch is split across processes (see batching.py), gradients are averaged by torch's
DistributedDataParallel, and only rank 0 writes checkpoints, logs and saves. Backend: NCCL on GPUs,
gloo on CPUs (which is how the tests run two processes on a laptop).
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class ProcessGroup:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1

    def device(self, device: torch.device) -> torch.device:
        """Each process on a node takes its own GPU."""
        return torch.device("cuda", self.local_rank) if device.type == "cuda" else device

    def barrier(self) -> None:
        if self.is_distributed:
            dist.barrier()

    def gather(self, value: Any) -> list[Any]:
        """Every rank's `value`, in rank order, on every rank (small picklable objects: RNG states)."""
        if not self.is_distributed:
            return [value]
        gathered: list[Any] = [None] * self.world_size
        dist.all_gather_object(gathered, value)
        return gathered


SINGLE_PROCESS = ProcessGroup()


def process_group() -> ProcessGroup:
    """The group this process belongs to; joins it on first call when started by torchrun."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return SINGLE_PROCESS
    if not dist.is_initialized():
        cuda = torch.cuda.is_available()
        if cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    return ProcessGroup(rank=dist.get_rank(), world_size=dist.get_world_size(),
                        local_rank=int(os.environ.get("LOCAL_RANK", "0")))


@contextmanager
def main_process_first(group: ProcessGroup) -> Iterator[None]:
    """Rank 0 runs the block first (e.g. builds a cached folder); the others then find its result."""
    if not group.is_main:
        group.barrier()
    yield
    if group.is_main:
        group.barrier()
