"""Frames and masks from disk to tensors on the model's working grid.

Every frame is cropped to the inside of the endoscope's black border, then resized to the working size (H, W):
frames with antialiased bilinear interpolation, masks with nearest neighbour. A ``FrameSet`` keeps them in memory
as ``uint8`` (N, 3, H, W) frames and (N, H, W) class values in the model's numbering (0 = background, and every
structure not being learned counts as background; ``IGNORE`` = 255 = no label, from index masks' value 255: see
``distillseg.lap.index_masks``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from distillseg.contract.errors import file_error
from distillseg.contract.frames import read_frame, read_mask
from distillseg.common.frame_views import black_border_box
from distillseg.lap.dsad import FrameRecord, is_dsad_root, list_dsad
from distillseg.lap.endoscapes_data import is_endoscapes_root, list_endoscapes
from distillseg.lap.folder_data import is_folder_root, list_folder
from distillseg.lap.frame_resize import resize_levels
from distillseg.lap.index_masks import IndexMaskTable, UnknownMaskValue, index_labels
from distillseg.lap.mib_losses import IGNORE


@dataclass
class FrameSet:
    """Frames on the working grid: ``images`` uint8 (N, 3, H, W), ``labels`` uint8 (N, H, W) (``IGNORE`` = no
    label), one patient id each, ``annotated`` bool (N, C): whether frame n annotates the c-th structure asked for,
    and ``skipped``: frames left out because their mask holds a value the label table does not name."""

    images: torch.Tensor
    labels: torch.Tensor
    patients: list[str]
    annotated: torch.Tensor
    synthetic: bool = False
    skipped: list[Path] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def summary(self) -> dict:
        """What a step was trained on, for the model's history (counts only: no file names, no pixels)."""
        counts = torch.bincount(self.labels.flatten().long(), minlength=1)
        return {"frames": len(self), "patients": len(set(self.patients)),
                "labelled_pixels": {str(v): int(c) for v, c in enumerate(counts.tolist()) if v and v != IGNORE and c}}


def find_records(data: str | Path, classes: list[str], source: str = "auto", split: str = "all",
                 patients: list[str] | None = None, unknown_values: str = "refuse"
                 ) -> tuple[list[FrameRecord], IndexMaskTable | None]:
    """Frame records of a generic folder, an Endoscapes2023 release or a DSAD-layout folder; the second item tells
    how index masks' values map to classes (generic and Endoscapes layouts), or is None for DSAD's binary
    per-structure masks. ``unknown_values`` (``refuse``/``skip``) is the rule for index-mask values the label table
    does not name."""
    data = Path(data)
    if not data.is_dir():
        raise file_error(data, "data folder does not exist")
    if is_folder_root(data):
        return list_folder(data, classes, patients, unknown_values)
    if is_endoscapes_root(data):
        return list_endoscapes(data, classes, split, patients, unknown_values)
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


def _frame_mask(path: Path, frame: np.ndarray, record: FrameRecord) -> np.ndarray:
    mask = read_mask(path)
    if mask.shape != frame.shape[:2]:
        raise file_error(path, f"mask is {mask.shape[1]}x{mask.shape[0]} pixels but its frame "
                               f"{record.image.name} is {frame.shape[1]}x{frame.shape[0]}")
    return mask


def read_labelled_frame(record: FrameRecord, class_values: dict[str, int],
                        index: IndexMaskTable | None) -> tuple[np.ndarray, np.ndarray]:
    """The full-size frame (h, w, 3) and its label map (h, w) in the model's numbering (``IGNORE`` = no label).

    ``index``: the table of an index-mask layout (one mask file holds every structure), or None for binary
    per-structure masks (DSAD)."""
    frame = read_frame(record.image)
    if index is not None:
        path = next(iter(record.masks.values()))
        return frame, index_labels(_frame_mask(path, frame, record), path, record.image, index, class_values)
    labels = np.zeros(frame.shape[:2], dtype=np.uint8)
    for name, value in class_values.items():
        path = record.masks.get(name)
        if path is not None:
            labels[_binary(_frame_mask(path, frame, record), path)] = value
    return frame, labels


def load_frameset(records: list[FrameRecord], class_values: dict[str, int], size: tuple[int, int],
                  index: IndexMaskTable | None = None, stage=None) -> FrameSet:
    """Read, border-crop and resize every record; ``stage`` (a progress stage) is advanced per frame.

    A frame whose index mask holds a value the table does not name stops the job, or with
    ``index.unknown_values == "skip"`` is left out and listed in ``FrameSet.skipped``."""
    images = torch.empty((len(records), 3, *size), dtype=torch.uint8)
    labels = torch.empty((len(records), *size), dtype=torch.uint8)
    kept: list[FrameRecord] = []
    skipped: list[Path] = []
    for number, record in enumerate(records, 1):
        try:
            frame, label_map = read_labelled_frame(record, class_values, index)
        except UnknownMaskValue as exc:
            if index is None or index.unknown_values != "skip":
                raise
            skipped.append(exc.frame)
        else:
            rows, cols = black_border_box(frame)
            images[len(kept)] = resize_frame(frame[rows, cols], size)
            labels[len(kept)] = resize_labels(label_map[rows, cols], size)
            kept.append(record)
        if stage is not None:
            stage.update(number)
    annotated = torch.tensor([[r.annotates(name) for name in class_values] for r in kept], dtype=torch.bool)
    return FrameSet(images[: len(kept)], labels[: len(kept)], [r.patient for r in kept],
                    annotated.reshape(len(kept), len(class_values)), skipped=skipped)


def read_frames(data: str | Path, names: list[str], class_values: dict[str, int], size: tuple[int, int], progress,
                stage_name: str = "read frames", source: str = "auto", split: str = "all",
                patients: list[str] | None = None, unknown_values: str = "refuse") -> FrameSet:
    """``find_records`` then ``load_frameset`` under a progress stage; each frame left out is named in a warning."""
    records, index = find_records(data, names, source, split, patients, unknown_values)
    with progress.stage(stage_name, len(records)) as stage:
        frames = load_frameset(records, class_values, size, index, stage)
    for frame in frames.skipped:
        progress.warning(f"{frame}: left out: its mask holds a value the label table does not name "
                         f"(--unknown-values skip)")
    if not len(frames):
        raise file_error(data, "every chosen frame was left out: their masks hold values the label table does not "
                               "name")
    return frames
