"""Deep, tiny layers of the 3D networks run in fp32 under autocast (imports only torch, so an exported MONAI
Bundle's copy of ``unet`` can use it without distillseg)."""

from __future__ import annotations

import torch


def run_tiny_in_fp32(module: torch.nn.Module, x: torch.Tensor, min_size: int = 5) -> torch.Tensor:
    """``module(x)``, but in fp32 with autocast off when a spatial side of ``x`` is below ``min_size`` (a strided
    block turns a 4-voxel input into the 2-voxel one that triggers the bug below).

    oneDNN's bf16 weight gradient of a 3x3x3 convolution on a 2-voxel-wide input is non-deterministic and can be
    non-finite (seen with torch 2.13 on AVX512-BF16 CPUs); such deep, tiny layers cost nothing in fp32.
    """
    if x.dim() > 2 and min(x.shape[2:]) < min_size and torch.is_autocast_enabled(x.device.type):
        with torch.autocast(device_type=x.device.type, enabled=False):
            return module(x.float())
    return module(x)
