"""Segmenting frames with an IncrementalLap model: crop the black border, resize to the working grid, predict,
bring the class probabilities back to the cropped region's size, take the argmax, and put the result into a label
map of the frame's own size (the border is background)."""

from __future__ import annotations

import numpy as np
import torch

from distillseg.common.device import autocast
from distillseg.common.frame_views import black_border_box
from distillseg.lap.data import resize_frame
from distillseg.lap.frame_resize import resize_back
from distillseg.lap.segmenter import Segmenter


@torch.no_grad()
def predict_working_grid(segmenter: Segmenter, images: torch.Tensor, device: torch.device, amp_dtype=None,
                         batch_size: int = 16) -> torch.Tensor:
    """uint8 frames (N, 3, H, W) on the working grid -> int64 label maps (N, H, W)."""
    segmenter.eval()
    out = []
    for start in range(0, len(images), batch_size):
        x = images[start:start + batch_size].to(device).float() / 255.0
        with autocast(device, amp_dtype):
            logits = segmenter(x).logits
        out.append(logits.float().argmax(dim=1).cpu())
    return torch.cat(out) if out else torch.empty((0, *images.shape[-2:]), dtype=torch.long)


@torch.no_grad()
def predict_frame(segmenter: Segmenter, frame: np.ndarray, size: tuple[int, int], device: torch.device,
                  amp_dtype=None) -> np.ndarray:
    """RGB frame (h, w, 3) uint8 -> label map (h, w) uint8/uint16 of class values on the frame's own grid."""
    segmenter.eval()
    rows, cols = black_border_box(frame)
    inside = frame[rows, cols]
    x = resize_frame(inside, size)[None].to(device).float() / 255.0
    with autocast(device, amp_dtype):
        logits = segmenter(x).logits.float()
    probs = torch.softmax(logits, dim=1)
    probs = resize_back(probs[0], inside.shape[:2])
    labels = np.zeros(frame.shape[:2], dtype=np.uint16 if segmenter.num_outputs > 256 else np.uint8)
    labels[rows, cols] = probs.argmax(dim=0).cpu().numpy().astype(labels.dtype)
    return labels
