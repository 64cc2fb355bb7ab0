"""The teacher's and the student's network: a 3D U-Net built from MONAI blocks that also returns the two
decoder features the hint loss compares (DESIGN §4 step 3).

Shape: input (B, 1, I, J, K) with I, J, K multiples of 16 -> output (B, out_channels, I, J, K), features
``[(B, channels[1], I/2, J/2, K/2), (B, channels[0], I, J, K)]`` (32 channels at half and 16 at full resolution with
the default channels 16-32-64-128-256). Blocks are MONAI ``ResidualUnit``s (residual) or plain double
``Convolution``s, InstanceNorm + PReLU; the head is a plain 1x1x1 convolution (a reconstruction head must not be
normalised).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from distillseg.common.device import run_tiny_in_fp32


def _block(in_channels: int, out_channels: int, stride: int, residual: bool) -> nn.Module:
    from monai.networks.blocks import Convolution, ResidualUnit

    if residual:
        return ResidualUnit(3, in_channels, out_channels, strides=stride, subunits=2, norm="INSTANCE", act="PRELU")
    return nn.Sequential(
        Convolution(3, in_channels, out_channels, strides=stride, norm="INSTANCE", act="PRELU"),
        Convolution(3, out_channels, out_channels, strides=1, norm="INSTANCE", act="PRELU"),
    )


def _upsample(in_channels: int, out_channels: int) -> nn.Module:
    from monai.networks.blocks import Convolution

    return Convolution(3, in_channels, out_channels, strides=2, kernel_size=3, is_transposed=True,
                       norm="INSTANCE", act="PRELU")


class FeatureUNet(nn.Module):
    """U-Net with ``len(channels) - 1`` stride-2 levels that returns (output, [half-res feature, full-res feature])."""

    def __init__(self, in_channels: int = 1, out_channels: int = 1, channels: Sequence[int] = (16, 32, 64, 128, 256),
                 residual: bool = True):
        super().__init__()
        self.config = {"in_channels": in_channels, "out_channels": out_channels, "channels": list(channels),
                       "residual": residual}
        self.encoders = nn.ModuleList(
            [_block(in_channels, channels[0], 1, residual)]
            + [_block(channels[i - 1], channels[i], 2, residual) for i in range(1, len(channels))])
        self.upsamplers = nn.ModuleList([_upsample(channels[i], channels[i - 1]) for i in range(len(channels) - 1, 0, -1)])
        self.decoders = nn.ModuleList([_block(2 * channels[i - 1], channels[i - 1], 1, residual)
                                       for i in range(len(channels) - 1, 0, -1)])
        self.head = nn.Conv3d(channels[0], out_channels, kernel_size=1)
        # Recompute block activations in the backward pass instead of storing them (training memory / ~1.3 time).
        self.checkpointing = False

    def _run(self, block: nn.Module, x: torch.Tensor) -> torch.Tensor:
        if self.checkpointing and self.training and torch.is_grad_enabled():
            from torch.utils.checkpoint import checkpoint

            return checkpoint(run_tiny_in_fp32, block, x, use_reentrant=False)
        return run_tiny_in_fp32(block, x)

    @property
    def levels(self) -> int:
        """Number of stride-2 levels: input sizes must be multiples of 2**levels."""
        return len(self.encoders) - 1

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        skips = []
        for encoder in self.encoders:
            x = self._run(encoder, x)
            skips.append(x)
        x = skips.pop()
        decoded = []
        for upsample, decoder in zip(self.upsamplers, self.decoders):
            x = self._run(upsample, x)
            skip = skips.pop()
            x = self._run(decoder, torch.cat([x.to(skip.dtype), skip], dim=1))
            decoded.append(x)
        return self.head(x), decoded[-2:]
