"""``torchrun`` support: one process per device, DistributedDataParallel, rank 0 alone writes.

Launched by ``torchrun --nproc_per_node=N -m distillseg …`` the environment carries RANK, WORLD_SIZE and
LOCAL_RANK; a plain ``python -m distillseg …`` is a world of one and nothing here does anything. CPU runs use the
``gloo`` backend, CUDA runs ``nccl``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from distillseg.contract.errors import UserError


@dataclass(frozen=True)
class World:
    """Where this process stands among the training processes."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def world_from_env() -> World:
    """This process's place under ``torchrun`` without joining a process group (enough for sharding inputs)."""
    return World(rank=int(os.environ.get("RANK", "0")), size=int(os.environ.get("WORLD_SIZE", "1")),
                 local_rank=int(os.environ.get("LOCAL_RANK", "0")))


def init_world(device: torch.device) -> World:
    """Join the process group that ``torchrun`` set up (once per process); a single process gets ``World()``."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World()
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend=backend)
    return World(rank=dist.get_rank(), size=dist.get_world_size(), local_rank=int(os.environ.get("LOCAL_RANK", "0")))


def shutdown_world() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def wrap_ddp(module: torch.nn.Module, device: torch.device, world: World,
             find_unused_parameters: bool = False) -> torch.nn.Module:
    """The module wrapped in DistributedDataParallel when there are several processes, else unchanged.

    ``find_unused_parameters``: set it when options switch part of the module off (e.g. a loss weight of 0).
    """
    if not world.distributed:
        return module
    return torch.nn.parallel.DistributedDataParallel(
        module, device_ids=[device.index] if device.type == "cuda" else None,
        find_unused_parameters=find_unused_parameters)


def barrier(world: World) -> None:
    if world.distributed:
        dist.barrier()


def all_reduce_mean(value: torch.Tensor, world: World) -> torch.Tensor:
    """Mean of ``value`` over all processes (a copy; for logging losses that agree across ranks)."""
    if not world.distributed:
        return value
    value = value.detach().clone()
    dist.all_reduce(value, op=dist.ReduceOp.SUM)
    return value / world.size


def shard(items: list, world: World) -> list:
    """This rank's share of ``items`` (round robin), e.g. the input files of a ``segment`` run."""
    return items[world.rank::world.size]


def global_batch(requested: int | None, world: World, option: str, single: int = 1) -> int:
    """The samples of one step over all processes: ``requested``, or by default ``single`` for one process and at
    least one per process under ``torchrun``. A ``requested`` batch smaller than the number of processes would leave
    a process with no sample (an empty batch reaching ``torch.cat``): refused in one sentence naming ``option``."""
    if requested is None:
        return max(single, world.size)
    if requested < world.size:
        raise UserError(f"{option} {requested} leaves some of the {world.size} torchrun processes without a sample; "
                        f"give {option} {world.size} or more, or leave it out (then each process gets at least one).")
    return requested
