"""The registration-based augmenter (DESIGN §4 step 1): a VoxelMorph-style network with a siamese encoder.

``velocity(moving, fixed)``: both (B, 1, I, J, K) -> stationary velocity (B, 3, I/2, J/2, K/2) at half resolution
(``half_res``, as VoxelMorph's ``int_downsize=2``) or (B, 3, I, J, K), in voxels of the grid it lives on.
``displacement(velocity, scale)``: scaling-and-squaring integration (MONAI ``DVF2DDF``, diffeomorphic) of
``scale * velocity``, upsampled to full resolution -> dense displacement (B, 3, I, J, K) in full-grid voxels.
``warp(image, displacement)``: MONAI ``Warp``. ``embed(image)``: (B, 64) unit vectors from the deepest encoder
features for the CLMorph-style contrastive term.

Encoder: 4 stride-2 convolutions (32, 64, 64, 64 channels, LeakyReLU 0.2), applied with shared weights to each
image; the decoder concatenates both branches' features at every level.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from distillseg.oneshot.tiny_fp32 import run_tiny_in_fp32


def _conv(in_channels: int, out_channels: int, stride: int = 1) -> nn.Module:
    from monai.networks.blocks import Convolution

    return Convolution(3, in_channels, out_channels, strides=stride, kernel_size=3, norm=None,
                       act=("leakyrelu", {"negative_slope": 0.2}))


class RegistrationAugmenter(nn.Module):
    def __init__(self, encoder_channels: Sequence[int] = (32, 64, 64, 64), decoder_channels: int = 64,
                 embedding: int = 64, half_res: bool = True, diffeomorphic: bool = True, integration_steps: int = 7,
                 refine_convs: int = 2):
        """``refine_convs``: convolutions at half resolution before the flow head (the costliest layers)."""
        super().__init__()
        self.config = {"encoder_channels": list(encoder_channels), "decoder_channels": decoder_channels,
                       "embedding": embedding, "half_res": half_res, "diffeomorphic": diffeomorphic,
                       "integration_steps": integration_steps, "refine_convs": refine_convs}
        chans = list(encoder_channels)
        self.encoder = nn.ModuleList([_conv(1 if i == 0 else chans[i - 1], c, stride=2) for i, c in enumerate(chans)])
        # Decoder from the deepest level up to half resolution; each level sees both branches' skips.
        self.decoder = nn.ModuleList()
        previous = 2 * chans[-1]
        for level in range(len(chans) - 2, -1, -1):
            self.decoder.append(_conv(previous, decoder_channels))
            previous = decoder_channels + 2 * chans[level]
        self.refine_half = nn.Sequential(_conv(previous, 32), *[_conv(32, 32) for _ in range(refine_convs - 1)])
        if half_res:
            self.refine_full = None
            flow_in = 32
        else:
            self.refine_full = nn.Sequential(_conv(32 + 2, 16), _conv(16, 16))
            flow_in = 16
        self.flow = nn.Conv3d(flow_in, 3, kernel_size=3, padding=1)
        nn.init.normal_(self.flow.weight, mean=0.0, std=1e-5)
        nn.init.zeros_(self.flow.bias)
        self.projection = nn.Linear(chans[-1], embedding)
        self.integrate = None
        if diffeomorphic:
            from monai.networks.blocks import DVF2DDF

            self.integrate = DVF2DDF(num_steps=integration_steps, mode="bilinear", padding_mode="zeros")
        from monai.networks.blocks import Warp

        self.warper = Warp(mode="bilinear", padding_mode="border")
        self.nearest_warper = Warp(mode="nearest", padding_mode="border")

    def encode(self, image: torch.Tensor) -> list[torch.Tensor]:
        features = []
        for layer in self.encoder:
            image = run_tiny_in_fp32(layer, image)
            features.append(image)
        return features

    def embed_features(self, deepest: torch.Tensor) -> torch.Tensor:
        """(B, C, ...) deepest features -> (B, embedding) unit vectors."""
        return F.normalize(self.projection(deepest.float().mean(dim=(2, 3, 4))), dim=1)

    def embed(self, image: torch.Tensor) -> torch.Tensor:
        return self.embed_features(self.encode(image)[-1])

    def velocity(self, moving: torch.Tensor, fixed: torch.Tensor,
                 return_features: bool = False):
        """(B, 1, I, J, K) x 2 -> velocity (B, 3, ...) [and the two branches' deepest features]."""
        moving_features, fixed_features = self.encode(moving), self.encode(fixed)
        x = torch.cat([moving_features[-1], fixed_features[-1]], dim=1)
        for index, layer in enumerate(self.decoder):
            level = len(moving_features) - 2 - index
            x = F.interpolate(run_tiny_in_fp32(layer, x), scale_factor=2, mode="trilinear", align_corners=False)
            x = torch.cat([x.to(moving_features[level].dtype), moving_features[level], fixed_features[level]], dim=1)
        x = self.refine_half(x)
        if self.refine_full is not None:
            x = F.interpolate(x, scale_factor=2, mode="trilinear", align_corners=False)
            x = self.refine_full(torch.cat([x, moving, fixed], dim=1))
        velocity = self.flow(x)
        if return_features:
            return velocity, moving_features[-1], fixed_features[-1]
        return velocity

    def displacement(self, velocity: torch.Tensor, full_shape: Sequence[int], scale: float | torch.Tensor = 1.0
                     ) -> torch.Tensor:
        """Integrate ``scale * velocity`` and bring it to ``full_shape``: (B, 3, *full_shape) in voxels."""
        if torch.is_tensor(scale) and scale.ndim == 1:
            scale = scale.view(-1, 1, 1, 1, 1)
        field = velocity.float() * scale
        if self.integrate is not None:
            field = self.integrate(field)
        if tuple(field.shape[2:]) != tuple(full_shape):
            factors = [(full - 1) / max(half - 1, 1) for full, half in zip(full_shape, field.shape[2:])]
            field = F.interpolate(field, size=tuple(full_shape), mode="trilinear", align_corners=True)
            field = field * torch.tensor(factors, dtype=field.dtype, device=field.device).view(1, 3, 1, 1, 1)
        return field

    def warp(self, image: torch.Tensor, displacement: torch.Tensor, nearest: bool = False) -> torch.Tensor:
        """Resample (B, C, I, J, K) at x + displacement(x)."""
        return (self.nearest_warper if nearest else self.warper)(image, displacement)

    def forward(self, moving: torch.Tensor, fixed: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(warped moving, displacement) for a batch of pairs."""
        displacement = self.displacement(self.velocity(moving, fixed), moving.shape[2:])
        return self.warp(moving, displacement), displacement
