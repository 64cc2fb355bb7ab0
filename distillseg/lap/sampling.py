"""Which frames each training iteration uses, their augmentation, and the learning-rate schedule.

Iteration ``i`` is a pure function of (seed, i): a resumed run draws the same batches as an uninterrupted one, and
under ``torchrun`` the ranks' ``DistributedSampler`` shares of one global batch are exactly the frames a single
process would draw for that batch.
"""

from __future__ import annotations

import torch
from torch.utils.data import DistributedSampler

from distillseg.common.distributed import World


class BatchPlan:
    """This rank's frame indices for every iteration, ``per_rank`` frames each (global batch / world size)."""

    def __init__(self, count: int, batch_size: int, world: World, seed: int):
        self.per_rank = max(1, batch_size // world.size)
        self.sampler = DistributedSampler(range(count), num_replicas=world.size, rank=world.rank, shuffle=True,
                                          seed=seed, drop_last=False)
        self._epochs: dict[int, list[int]] = {}

    def _epoch(self, epoch: int) -> list[int]:
        if epoch not in self._epochs:
            self.sampler.set_epoch(epoch)
            self._epochs = {epoch: list(self.sampler)}  # keep one epoch: iterations move forward
        return self._epochs[epoch]

    def indices(self, iteration: int) -> list[int]:
        length = len(self.sampler)
        position = iteration * self.per_rank
        out = []
        while len(out) < self.per_rank:
            epoch, offset = divmod(position, length)
            take = self._epoch(epoch)[offset: offset + self.per_rank - len(out)]
            out.extend(take)
            position += len(take)
        return out


def iteration_generator(seed: int, stage: str, iteration: int, rank: int = 0) -> torch.Generator:
    """A CPU generator for one iteration's random choices (augmentation, noise), independent of history."""
    salt = sum(ord(c) * 31 ** k for k, c in enumerate(stage)) % 1_000_003
    return torch.Generator().manual_seed((seed * 1_000_003 + salt) * 100_003 + iteration * 17 + rank)


def augment(images: torch.Tensor, labels: torch.Tensor | None, generator: torch.Generator
            ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """uint8 frames (B, 3, H, W) -> float in [0, 1] with random horizontal flips and per-frame colour gain/offset
    (a patient's colour cast and brightness differ); ``labels`` (B, H, W) are flipped with their frames."""
    x = images.float() / 255.0
    batch = x.shape[0]
    flip = torch.rand(batch, generator=generator) < 0.5
    gain = 1 + 0.1 * (2 * torch.rand(batch, 3, 1, 1, generator=generator) - 1)
    offset = 0.05 * (2 * torch.rand(batch, 1, 1, 1, generator=generator) - 1)
    x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
    x = (x * gain + offset).clamp(0, 1)
    if labels is not None:
        labels = torch.where(flip.view(-1, 1, 1), labels.flip(-1), labels)
    return x, labels


def poly_lr(base: float, iteration: int, total: int, power: float = 0.9) -> float:
    """Polynomial decay from ``base`` to 0 over ``total`` iterations (the schedule of DeepLab, MiB and PLOP)."""
    return base * (1 - min(iteration, total) / max(total, 1)) ** power
