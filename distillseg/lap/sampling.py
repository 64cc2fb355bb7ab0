"""Which frames each training iteration uses, their augmentation, and the learning-rate schedule.

Iteration ``i`` is a pure function of (seed, i): a resumed run draws the same batches as an uninterrupted one, and
under ``torchrun`` the ranks' ``DistributedSampler`` shares of one global batch are exactly the frames a single
process would draw for that batch.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from monai.transforms.utils import generate_label_classes_crop_centers, map_classes_to_indices
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


def augment(images: torch.Tensor, labels: torch.Tensor | None, generator: torch.Generator, zoom: float = 1.0,
            crop: tuple[int, int] | None = None, focus: float = 0.0) -> tuple[torch.Tensor, torch.Tensor | None]:
    """uint8 frames (B, 3, H, W) -> float in [0, 1] with random horizontal flips and per-frame colour gain/offset
    (a patient's colour cast and brightness differ). With ``crop`` (h, w) every frame becomes a random (h, w) window
    of itself: training sees the working grid's full detail at a fraction of the cost. With ``zoom`` < 1 the window
    is a fraction U(zoom, 1) of that size, resized up: the camera moves closer in real surgery, and a small structure
    (cystic artery, 0.6 % of a frame) then covers more pixels. With ``focus`` > 0 that share of the windows is
    centred on a labelled pixel instead of a random place (``_focus_centres``). ``labels`` (B, H, W) follow their
    frames (nearest neighbour). Output (B, 3, h, w), (B, h, w); (h, w) = (H, W) without ``crop``."""
    x = images.float() / 255.0
    batch = x.shape[0]
    flip = torch.rand(batch, generator=generator) < 0.5
    gain = 1 + 0.1 * (2 * torch.rand(batch, 3, 1, 1, generator=generator) - 1)
    offset = 0.05 * (2 * torch.rand(batch, 1, 1, 1, generator=generator) - 1)
    x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
    x = (x * gain + offset).clamp(0, 1)
    if labels is not None:
        labels = torch.where(flip.view(-1, 1, 1), labels.flip(-1), labels)
    if zoom < 1 or (crop is not None and tuple(crop) != tuple(x.shape[-2:])):
        x, labels = _windows(x, labels, zoom, tuple(crop) if crop is not None else tuple(x.shape[-2:]), generator,
                             focus)
    return x, labels


def _windows(x: torch.Tensor, labels: torch.Tensor | None, zoom: float, size: tuple[int, int],
             generator: torch.Generator, focus: float = 0.0) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Float frames (B, 3, H, W) and labels (B, H, W): from each a window of ``size`` times a random fraction
    U(zoom, 1), at a random place (or, for a ``focus`` share, around a labelled pixel), resized to ``size``:
    frames bilinear, labels nearest."""
    height, width = x.shape[-2:]
    fractions = zoom + (1 - zoom) * torch.rand(x.shape[0], generator=generator)
    places = torch.rand(x.shape[0], 2, generator=generator)
    windows = [(min(height, max(1, round(f * size[0]))), min(width, max(1, round(f * size[1]))))
               for f in fractions.tolist()]
    centres = _focus_centres(labels, windows, focus, generator) if focus > 0 and labels is not None else {}
    frames, masks = [], []
    for k, (h, w) in enumerate(windows):
        top, left = int(places[k, 0] * (height - h + 1)), int(places[k, 1] * (width - w + 1))
        if k in centres:  # MONAI's centre is already shifted so that the whole window lies inside the frame
            top, left = centres[k][0] - h // 2, centres[k][1] - w // 2
        window = x[k:k + 1, :, top:top + h, left:left + w]
        frames.append(window if (h, w) == size else
                      F.interpolate(window, size=size, mode="bilinear", align_corners=False))
        if labels is not None:
            mask = labels[k:k + 1, None, top:top + h, left:left + w]
            if (h, w) != size:
                mask = F.interpolate(mask.float(), size=size, mode="nearest-exact").to(labels.dtype)
            masks.append(mask[:, 0])
    return torch.cat(frames), (torch.cat(masks) if labels is not None else None)


def _focus_centres(labels: torch.Tensor, windows: list[tuple[int, int]], focus: float,
                   generator: torch.Generator) -> dict[int, tuple[int, int]]:
    """Window centres (row, column) for the frames drawn into the ``focus`` share that show a structure, the
    frames' windows of sizes ``windows`` (h, w), one per frame: a structure chosen uniformly among those the frame's
    labels (B, H, W) show (0 = background and 255 = unlabelled never), then one of its pixels, both by MONAI's
    class-ratio crop sampler (``RandCropByLabelClasses``' rule, as nnU-Net oversamples foreground). A structure
    covering 0.3 % of a frame is then at the centre of a window as often as one covering 20 %. Frames outside the
    share, or without a structure, keep their random place."""
    chosen = (torch.rand(labels.shape[0], generator=generator) < focus).tolist()
    seeds = torch.randint(0, 2 ** 31 - 1, (labels.shape[0],), generator=generator).tolist()
    height, width = labels.shape[-2:]
    centres = {}
    for k in (k for k in range(labels.shape[0]) if chosen[k]):
        frame = labels[k].numpy()
        values = [int(v) for v in np.unique(frame) if 0 < v < 255]
        if not values:
            continue
        indices = map_classes_to_indices(np.where(frame == 255, 0, frame)[None], num_classes=max(values) + 1)
        ratios = [int(c in values) for c in range(max(values) + 1)]
        centre = generate_label_classes_crop_centers(windows[k], 1, (height, width), indices, ratios,
                                                     np.random.RandomState(seeds[k]), warn=False)[0]
        centres[k] = (int(centre[0]), int(centre[1]))
    return centres


def poly_lr(base: float, iteration: int, total: int, power: float = 0.9) -> float:
    """Polynomial decay from ``base`` to 0 over ``total`` iterations (the schedule of DeepLab, MiB and PLOP)."""
    return base * (1 - min(iteration, total) / max(total, 1)) ** power
