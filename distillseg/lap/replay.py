"""Replay for a new step: synthetic frames from the earlier steps' diffusion models, pseudo-labelled by the
previous segmenter (its confident old-structure or background prediction; uncertain pixels get no label)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from distillseg.common.device import autocast
from distillseg.lap.diffusion import build_diffusion_net, sample_frames
from distillseg.lap.mib_losses import IGNORE
from distillseg.lap.model_bundle import LapModel
from distillseg.lap.segmenter import Segmenter


@torch.no_grad()
def predict_with_confidence(segmenter: Segmenter, frames: torch.Tensor, device: torch.device, amp_dtype=None,
                            batch_size: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """float frames (M, 3, H, W) in [0, 1] -> the argmax class, uint8 (M, H, W), and its softmax, float (M, H, W)."""
    segmenter.eval()
    if not len(frames):
        return (torch.empty((0, *frames.shape[-2:]), dtype=torch.uint8),
                torch.empty((0, *frames.shape[-2:]), dtype=torch.float32))
    labels, confidences = [], []
    for start in range(0, len(frames), batch_size):
        with autocast(device, amp_dtype):
            logits = segmenter(frames[start:start + batch_size].to(device)).logits.float()
        confidence, predicted = torch.softmax(logits, dim=1).max(dim=1)
        labels.append(predicted.to(torch.uint8).cpu())
        confidences.append(confidence.cpu())
    return torch.cat(labels), torch.cat(confidences)


def pseudo_label(segmenter: Segmenter, frames: torch.Tensor, confidence: float, device: torch.device,
                 amp_dtype=None, batch_size: int = 16) -> torch.Tensor:
    """float frames (M, 3, H, W) in [0, 1] -> uint8 labels (M, H, W): argmax where softmax >= ``confidence``,
    else IGNORE (255)."""
    labels, sure = predict_with_confidence(segmenter, frames, device, amp_dtype, batch_size)
    labels[sure < confidence] = IGNORE
    return labels


def generate_replay(model: LapModel, previous: Segmenter, count: int, confidence: float, device: torch.device,
                    amp_dtype, seed: int, on_batch=None) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` synthetic frames shared evenly among the earlier steps' diffusion models, on the working grid:
    uint8 frames (count, 3, H, W) and pseudo-labels (count, H, W)."""
    steps = sorted(model.diffusion)
    if not steps or count <= 0:
        return (torch.empty((0, 3, *model.size), dtype=torch.uint8),
                torch.empty((0, *model.size), dtype=torch.uint8))
    shares = [count // len(steps) + (1 if i < count % len(steps) else 0) for i in range(len(steps))]
    frames, done = [], 0
    for step, share in zip(steps, shares):
        if share == 0:
            continue
        net = build_diffusion_net(model.diffusion_config)
        net.load_state_dict(model.diffusion_weights(step))
        generator = torch.Generator().manual_seed(seed * 7919 + step)
        sampled = sample_frames(net.to(device), share, model.diffusion_config, device, generator,
                                amp=lambda: autocast(device, amp_dtype),
                                on_batch=(lambda n, d=done: on_batch(d + n)) if on_batch else None)
        done += share
        frames.append(F.interpolate(sampled, size=model.size, mode="bilinear", align_corners=False).clamp(0, 1))
    images = torch.cat(frames)
    labels = pseudo_label(previous, images, confidence, device, amp_dtype)
    return (images * 255).round().to(torch.uint8), labels
