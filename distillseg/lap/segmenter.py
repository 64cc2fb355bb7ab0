"""The 2D segmenter: MONAI ``FlexibleUNet`` (ResNet encoder, U-Net decoder) whose head grows by one output per new
structure without renumbering the old ones.

Input: frames as float (B, 3, H, W) in [0, 1] (H and W multiples of 32); the ImageNet mean/std normalisation is
done inside, so pretrained encoder weights see what they were trained on. Output: logits (B, 1 + C, H, W), channel 0
background, channel v the structure with class value v. With ``features=True`` it also returns the encoder's
feature maps (strides 2..32) and the decoder's block outputs (strides 16..1), which distillation and the
contrastive projection head use.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class SegmenterConfig:
    """Network shape; stored in the manifest so a bundle rebuilds the same network."""

    backbone: str = "resnet18"
    decoder_channels: tuple[int, ...] = (128, 64, 32, 32, 16)
    embedding_level: int = 2  # decoder block whose output (stride 4) feeds the contrastive projection head

    def to_json(self) -> dict:
        return {**asdict(self), "decoder_channels": list(self.decoder_channels)}

    @classmethod
    def from_json(cls, data: dict) -> "SegmenterConfig":
        return cls(backbone=str(data["backbone"]), decoder_channels=tuple(int(c) for c in data["decoder_channels"]),
                   embedding_level=int(data.get("embedding_level", 2)))

    @property
    def embedding_channels(self) -> int:
        return self.decoder_channels[self.embedding_level]


@dataclass
class SegmenterOutput:
    logits: torch.Tensor                      # (B, 1 + C, H, W)
    encoder: list[torch.Tensor] | None = None  # strides 2, 4, 8, 16, 32
    decoder: list[torch.Tensor] | None = None  # strides 16, 8, 4, 2, 1


class Segmenter(nn.Module):
    """FlexibleUNet parts run step by step so intermediate features can be returned."""

    def __init__(self, config: SegmenterConfig, num_outputs: int):
        from monai.networks.nets import FlexibleUNet

        super().__init__()
        self.config = config
        net = FlexibleUNet(in_channels=3, out_channels=num_outputs, backbone=config.backbone, pretrained=False,
                           decoder_channels=config.decoder_channels, spatial_dims=2, is_pad=False)
        self.encoder = net.encoder
        self.decoder = net.decoder
        self.skip_connect = net.skip_connect
        self.head: nn.Conv2d = net.segmentation_head[0]
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    @property
    def num_outputs(self) -> int:
        return int(self.head.out_channels)

    def forward(self, frames: torch.Tensor, features: bool = False) -> SegmenterOutput:
        x = (frames - self.mean) / self.std
        encoded = self.encoder(x)
        skips = encoded[:-1][::-1]
        y = encoded[-1]
        decoded = []
        for index, block in enumerate(self.decoder.blocks):
            y = block(y, skips[index] if index < self.skip_connect else None)
            decoded.append(y)
        logits = self.head(y)
        if not features:
            return SegmenterOutput(logits)
        return SegmenterOutput(logits, list(encoded), decoded)

    @torch.no_grad()
    def grow_head(self, new_outputs: int) -> None:
        """Add ``new_outputs`` classes, initialised from the background logit as in MiB (Cermelli et al. 2020).

        Old structures' weights are copied unchanged; background and every new class get the old background
        weights with the bias lowered by log(1 + new_outputs). Then P_new(background) + Σ P_new(new classes)
        equals P_old(background) and every old structure's probability is unchanged: growth alone changes no
        prediction.
        """
        old = self.head
        grown = nn.Conv2d(old.in_channels, old.out_channels + new_outputs, old.kernel_size, old.stride,
                          old.padding, bias=True).to(old.weight.device, old.weight.dtype)
        shift = math.log(1 + new_outputs)
        grown.weight[: old.out_channels] = old.weight
        grown.bias[: old.out_channels] = old.bias
        grown.weight[old.out_channels:] = old.weight[0]
        grown.bias[old.out_channels:] = old.bias[0] - shift
        grown.bias[0] = old.bias[0] - shift
        self.head = grown


def frames_to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 (B, 3, H, W) -> float (B, 3, H, W) in [0, 1]."""
    return images.float() / 255.0
