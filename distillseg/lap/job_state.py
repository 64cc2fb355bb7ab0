"""Resumable state of a ``lap train`` / ``lap learn`` job, kept in ``<out>.checkpoint/`` beside the output model.

A job runs named stages in order (e.g. replay -> segmenter -> diffusion). The checkpoint holds, for every stage
started so far, its tensors (network weights, optimizer moments, replayed synthetic frames — never a patient frame)
and how far it got. Only rank 0 writes. ``--resume`` follows the engine-wide rule (``common.checkpoint
.open_checkpoint``): refused when there is no checkpoint or another job made it. It is deleted once the model
bundle is complete.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import torch

from distillseg.common.checkpoint import open_checkpoint, optimizer_from_flat, optimizer_to_flat, save_checkpoint
from distillseg.common.distributed import World
from distillseg.contract.paths import checkpoint_path


class JobState:
    def __init__(self, out: Path, job: str, world: World, resume: bool, progress=None):
        """``job``: the fingerprint of the run's options (a checkpoint made with another is not resumed)."""
        self.path = checkpoint_path(out)
        self.world = world
        self.tensors: dict[str, dict[str, torch.Tensor]] = {}
        self.meta: dict[str, Any] = {"job": job, "stages": {}, "optimizers": {}}
        loaded = open_checkpoint(self.path, resume, job, world.is_main)
        if loaded is not None:
            self.tensors, self.meta = loaded
            if progress is not None:
                progress.log(f"resuming from {self.path}")

    def iteration(self, stage: str) -> int:
        """Iterations of ``stage`` already done (0 when it has not started)."""
        return int(self.meta["stages"].get(stage, {}).get("iteration", 0))

    def done(self, stage: str) -> bool:
        return bool(self.meta["stages"].get(stage, {}).get("done", False))

    def group(self, name: str) -> dict[str, torch.Tensor] | None:
        return self.tensors.get(name)

    def restore_optimizer(self, name: str, optimizer: torch.optim.Optimizer) -> None:
        if name in self.meta["optimizers"] and f"{name}_optimizer" in self.tensors:
            optimizer_from_flat(optimizer, self.tensors[f"{name}_optimizer"], self.meta["optimizers"][name])

    def record(self, stage: str, iteration: int, done: bool = False,
               groups: dict[str, dict[str, torch.Tensor]] | None = None,
               optimizers: dict[str, torch.optim.Optimizer] | None = None, write: bool = True) -> None:
        """Remember a stage's progress and tensors; ``write`` saves the whole checkpoint (rank 0 only)."""
        self.meta["stages"][stage] = {"iteration": int(iteration), "done": bool(done)}
        for name, state in (groups or {}).items():
            self.tensors[name] = {k: v.detach().cpu() for k, v in state.items()}
        for name, optimizer in (optimizers or {}).items():
            flat, meta = optimizer_to_flat(optimizer)
            self.tensors[f"{name}_optimizer"] = flat
            self.meta["optimizers"][name] = meta
        if write and self.world.is_main:
            save_checkpoint(self.path, self.tensors, self.meta)

    def remove(self) -> None:
        if self.world.is_main and self.path.exists():
            shutil.rmtree(self.path, ignore_errors=True)
