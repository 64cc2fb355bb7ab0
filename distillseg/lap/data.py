"""Frames and masks from disk to tensors on the model's working grid.

Every frame is cropped to the inside of the endoscope's black border, then resized to the working size (H, W):
frames with antialiased bilinear interpolation, masks with nearest neighbour. A ``FrameSet`` keeps them in memory
as ``uint8`` (N, 3, H, W) frames and (N, H, W) class values in the model's numbering (0 = background, and every
structure not being learned counts as background).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from distillseg.contract.errors import file_error
from distillseg.contract.frames import read_frame, read_mask
from distillseg.common.frame_views import black_border_box
from distillseg.lap.dsad import FrameRecord, is_dsad_root, list_dsad
from distillseg.lap.folder_data import is_folder_root, list_folder
from distillseg.lap.frame_resize import resize_levels


@dataclass
class FrameSet:
    """Frames on the working grid: ``images`` uint8 (N, 3, H, W), ``labels`` uint8 (N, H, W), one patient id each,
    and ``annotated`` bool (N, C): whether frame n annotates the c-th structure asked for."""

    images: torch.Tensor
    labels: torch.Tensor
    patients: list[str]
    annotated: torch.Tensor
    synthetic: bool = False

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def summary(self) -> dict:
        """What a step was trained on, for the model's history (counts only: no file names, no pixels)."""
        counts = torch.bincount(self.labels.flatten().long(), minlength=1)
        return {"frames": len(self), "patients": len(set(self.patients)),
                "labelled_pixels": {str(v): int(c) for v, c in enumerate(counts.tolist()) if v and c}}


def find_records(data: str | Path, classes: list[str], source: str = "auto", split: str = "all",
                 patients: list[str] | None = None) -> tuple[list[FrameRecord], dict[str, int] | None]:
    """Frame records of a DSAD-layout or generic folder; the second item maps a class to its value in an index
    mask (generic layout), or is None for DSAD's binary per-structure masks."""
    data = Path(data)
    if not data.is_dir():
        raise file_error(data, "data folder does not exist")
    if is_folder_root(data):
        return list_folder(data, classes, patients)
    if is_dsad_root(data) or any(p.is_dir() for p in data.iterdir()):
        return list_dsad(data, classes, source, split, patients), None
    raise file_error(data, "is neither a DSAD-layout folder (<structure>/<NN>/imageXX.png) nor a folder with "
                           "images/, masks/ and labels.json")


def resize_frame(frame: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """(h, w, 3) uint8 -> (3, H, W) uint8 with antialiased bilinear resampling."""
    tensor = torch.from_numpy(np.require(frame, requirements=["C", "W"])).permute(2, 0, 1)
    return resize_levels(tensor, size).to(torch.uint8)


def resize_labels(labels: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """(h, w) integer -> (H, W) uint8 with nearest-neighbour resampling."""
    tensor = torch.from_numpy(labels.astype(np.float32))[None, None]
    return torch.nn.functional.interpolate(tensor, size=tuple(size), mode="nearest-exact")[0, 0].to(torch.uint8)


def _binary(mask: np.ndarray, path: Path) -> np.ndarray:
    values = set(np.unique(mask).tolist())
    if not (values <= {0, 255} or values <= {0, 1}):
        shown = ", ".join(str(v) for v in sorted(values)[:6])
        raise file_error(path, f"binary mask must hold 0/255 or 0/1, found {shown}")
    return mask > 0


def read_labelled_frame(record: FrameRecord, class_values: dict[str, int],
                        mask_values: dict[str, int] | None) -> tuple[np.ndarray, np.ndarray]:
    """The full-size frame (h, w, 3) and its label map (h, w) in the model's numbering."""
    frame = read_frame(record.image)
    labels = np.zeros(frame.shape[:2], dtype=np.uint8)
    cache: dict[Path, np.ndarray] = {}
    for name, value in class_values.items():
        path = record.masks.get(name)
        if path is None:
            continue
        if path not in cache:
            cache[path] = read_mask(path)
            if cache[path].shape != frame.shape[:2]:
                raise file_error(path, f"mask is {cache[path].shape[1]}x{cache[path].shape[0]} pixels but its frame "
                                       f"{record.image.name} is {frame.shape[1]}x{frame.shape[0]}")
        where = (cache[path] == mask_values[name]) if mask_values else _binary(cache[path], path)
        labels[where] = value
    return frame, labels


def load_frameset(records: list[FrameRecord], class_values: dict[str, int], size: tuple[int, int],
                  mask_values: dict[str, int] | None = None, stage=None) -> FrameSet:
    """Read, border-crop and resize every record; ``stage`` (a progress stage) is advanced per frame."""
    images = torch.empty((len(records), 3, *size), dtype=torch.uint8)
    labels = torch.empty((len(records), *size), dtype=torch.uint8)
    for index, record in enumerate(records):
        frame, label_map = read_labelled_frame(record, class_values, mask_values)
        rows, cols = black_border_box(frame)
        images[index] = resize_frame(frame[rows, cols], size)
        labels[index] = resize_labels(label_map[rows, cols], size)
        if stage is not None:
            stage.update(index + 1)
    annotated = torch.tensor([[r.annotates(name) for name in class_values] for r in records], dtype=torch.bool)
    return FrameSet(images, labels, [r.patient for r in records], annotated.reshape(len(records), len(class_values)))
