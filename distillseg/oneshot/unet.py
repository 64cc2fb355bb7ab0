"""The teacher's and the student's network: a 3D U-Net built from MONAI blocks that also returns the two
decoder features the hint loss compares (DESIGN §4 step 3).

Shape: input (B, 1, I, J, K) with I, J, K multiples of 16 -> ``UNetOutput``: ``output`` (B, out_channels, I, J, K),
``features`` ``[(B, channels[1], I/2, J/2, K/2), (B, channels[0], I, J, K)]`` (32 channels at half and 16 at full
resolution with the default channels 16-32-64-128-256) and ``auxiliary`` outputs at 1/2, 1/4, … resolution for
deep supervision (empty unless ``deep_supervision`` > 0). Blocks are MONAI ``ResidualUnit``s (residual) or plain double
``Convolution``s, InstanceNorm + PReLU; the head is a plain 1x1x1 convolution (a reconstruction head must not be
normalised).

With ``prior_channels`` = C > 0 (the student with an atlas prior, see ``atlas_prior``) the input is
(B, in_channels + C, I, J, K): the image channels then the prior's C probability channels, and every output head's
logits are added to the logarithm of the prior (average-pooled to the head's resolution), so an untrained network
already predicts the atlas.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from distillseg.oneshot.tiny_fp32 import run_tiny_in_fp32
from distillseg.oneshot.atlas_prior import prior_logits


class UNetOutput(NamedTuple):
    output: torch.Tensor
    features: list[torch.Tensor]
    auxiliary: list[torch.Tensor]


def _block(in_channels: int, out_channels: int, stride: int, residual: bool, subunits: int = 2) -> nn.Module:
    from monai.networks.blocks import Convolution, ResidualUnit

    if residual:
        return ResidualUnit(3, in_channels, out_channels, strides=stride, subunits=subunits, norm="INSTANCE",
                            act="PRELU")
    return nn.Sequential(*[
        Convolution(3, in_channels if unit == 0 else out_channels, out_channels, strides=stride if unit == 0 else 1,
                    norm="INSTANCE", act="PRELU") for unit in range(subunits)])


def _upsample(in_channels: int, out_channels: int, kernel_size: int) -> nn.Module:
    from monai.networks.blocks import Convolution

    # kernel 3 (MONAI UNet's choice) or kernel 2 with no padding: an exact 2x upsampling at 8/27 of the cost.
    padding = {} if kernel_size % 2 else {"padding": 0, "output_padding": 0}
    return Convolution(3, in_channels, out_channels, strides=2, kernel_size=kernel_size, is_transposed=True,
                       norm="INSTANCE", act="PRELU", **padding)


class FeatureUNet(nn.Module):
    """U-Net with ``len(channels) - 1`` stride-2 levels that returns (output, [half-res feature, full-res feature])."""

    def __init__(self, in_channels: int = 1, out_channels: int = 1, channels: Sequence[int] = (16, 32, 64, 128, 256),
                 residual: bool = True, decoder_subunits: int = 2, up_kernel: int = 3, deep_supervision: int = 0,
                 prior_channels: int = 0):
        """``decoder_subunits``: convolutions per decoder block; ``up_kernel``: transposed-convolution kernel (2 or 3);
        ``deep_supervision``: number of extra 1x1x1 heads on the decoder levels below full resolution;
        ``prior_channels``: atlas-prior input channels whose log the logits start from (0: none)."""
        super().__init__()
        if prior_channels not in (0, out_channels):
            raise ValueError("prior_channels must be 0 or out_channels (one prior channel per class)")
        self.config = {"in_channels": in_channels, "out_channels": out_channels, "channels": list(channels),
                       "residual": residual, "decoder_subunits": decoder_subunits, "up_kernel": up_kernel,
                       "deep_supervision": deep_supervision, "prior_channels": prior_channels}
        self.in_channels, self.prior_channels = in_channels, prior_channels
        self.encoders = nn.ModuleList(
            [_block(in_channels + prior_channels, channels[0], 1, residual)]
            + [_block(channels[i - 1], channels[i], 2, residual) for i in range(1, len(channels))])
        self.upsamplers = nn.ModuleList([_upsample(channels[i], channels[i - 1], up_kernel)
                                         for i in range(len(channels) - 1, 0, -1)])
        self.decoders = nn.ModuleList([_block(2 * channels[i - 1], channels[i - 1], 1, residual, decoder_subunits)
                                       for i in range(len(channels) - 1, 0, -1)])
        self.head = nn.Conv3d(channels[0], out_channels, kernel_size=1)
        self.auxiliary_heads = nn.ModuleList([nn.Conv3d(channels[level], out_channels, kernel_size=1)
                                              for level in range(1, 1 + deep_supervision)])
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

    def forward(self, x: torch.Tensor) -> UNetOutput:
        prior = x[:, self.in_channels:] if self.prior_channels else None
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
        auxiliary = []
        if self.training and self.auxiliary_heads:
            # decoded[-1 - level] is the decoder output at 1 / 2**level resolution.
            auxiliary = [head(decoded[-1 - level]) for level, head in enumerate(self.auxiliary_heads, start=1)]
        output = self.head(x)
        if prior is not None:
            output = output + prior_logits(prior)
            auxiliary = [a + prior_logits(F.avg_pool3d(prior.float(), 2**level))
                         for level, a in enumerate(auxiliary, start=1)]
        return UNetOutput(output, decoded[-2:], auxiliary)
