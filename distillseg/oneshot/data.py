"""From the user's files to tensors on the working grid: the atlas (image + labels) and pre-aligned scans.

The working grid has the atlas's axis directions, an isotropic spacing, covers the atlas's labelled region plus a
margin, and has dimensions that are multiples of 16. Every scan is normalised, affinely pre-aligned to the atlas
and resampled into that grid; the world map found for it is kept to bring predictions back onto its own grid.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from distillseg.contract.errors import UserError, file_error
from distillseg.contract.labels import LabelTable, read_label_table
from distillseg.common.volume_io import Volume, read_image, read_labels, same_grid
from distillseg.oneshot.geometry import Grid, resample, resample_labels, working_grid
from distillseg.oneshot.intensity import IntensityNormalization
from distillseg.oneshot.prealign import AtlasAligner

# Working-grid size that ``--spacing auto`` aims for: a 1 mm brain fits on a GPU; a CPU gets about 2 mm.
AUTO_MAX_VOXELS = {"cuda": 16_000_000, "cpu": 1_200_000}
# A chosen spacing must leave the labelled region at least this many voxels across along every axis: coarser, the
# structures vanish into a voxel or two and nothing can be learned (50 mm on a 3 cm region left one voxel).
MIN_LABELLED_VOXELS = 4


@dataclass
class Atlas:
    """The atlas on the working grid.

    ``image``: (I, J, K) float32 in [0, 1]; ``classes``: (I, J, K) int64 class indices 0..C-1; ``values``: class
    index -> label value in the user's files (0 = background first); ``table``: names/colours of ``values[1:]``.
    """

    grid: Grid
    image: torch.Tensor
    classes: torch.Tensor
    values: list[int]
    table: LabelTable
    normalization: IntensityNormalization
    source_spacing: list[float]
    source_shape: list[int]


def _label_bounds(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    where = [np.flatnonzero(labels.any(axis=tuple(a for a in range(3) if a != axis))) for axis in range(3)]
    return np.array([w.min() for w in where], float), np.array([w.max() for w in where], float)


def choose_spacing(spacing: str | float | None, source: Grid, bounds, device_type: str) -> float | None:
    """The working spacing in mm: a number as given (``option_types.spacing_mm`` checked its range; refused when
    the labelled region would be fewer than ``MIN_LABELLED_VOXELS`` across), ``atlas`` for the atlas's own spacing
    (None), or ``auto``: the atlas's spacing coarsened isotropically until the labelled region fits
    ``AUTO_MAX_VOXELS`` for the device."""
    if spacing in (None, "atlas"):
        return None
    labelled_mm = (np.asarray(bounds[1]) - np.asarray(bounds[0]) + 1) * source.spacing
    if spacing != "auto":
        value = float(spacing)
        if labelled_mm.min() / value < MIN_LABELLED_VOXELS:
            coarsest = np.floor(labelled_mm.min() / MIN_LABELLED_VOXELS * 100) / 100
            raise UserError(f"--spacing {value:g} mm is too coarse for this atlas: its labelled region is "
                            f"{labelled_mm.min():.3g} mm across, {labelled_mm.min() / value:.2g} voxels at that "
                            f"spacing; use at most {coarsest:g} mm.")
        return value
    extent_mm = labelled_mm * 1.2
    budget = AUTO_MAX_VOXELS["cuda" if device_type == "cuda" else "cpu"]
    finest = float(source.spacing.min())
    needed = float(np.cbrt(np.prod(extent_mm) / budget))
    if needed <= float(source.spacing.max()) * 1.01 and np.allclose(source.spacing, source.spacing[0], rtol=1e-3):
        return None
    return round(max(finest, needed), 2)


def choose_normalization(atlas: np.ndarray, kind: str = "auto",
                         window: tuple[float, float] = (-1000.0, 1000.0)) -> IntensityNormalization:
    """The normalisation for ``kind`` (``auto``, ``mri``, ``ct``), judged from the atlas array for ``auto``."""
    if kind == "auto":
        kind = "ct" if float(atlas.min()) < -500 else "mri"
    if kind == "ct":
        if window[1] <= window[0]:
            raise UserError(f"--ct-window {window[0]:g} {window[1]:g} is empty; give LOW HIGH with LOW < HIGH.")
        return IntensityNormalization("window", float(window[0]), float(window[1]))
    if kind == "mri":
        return IntensityNormalization("percentile", 0.5, 99.5)
    raise UserError(f"Unknown --modality '{kind}'; use auto, mri or ct.")


def _label_table(labels: Volume, values: list[int], names_path: str | None) -> LabelTable:
    if names_path:
        table = read_label_table(names_path)
    elif labels.labels is not None:
        table = labels.labels
    else:
        table = LabelTable()
    return table.restricted_to(values)


def prepare_atlas(image_path: str, labels_path: str, label_names: str | None = None, spacing: str | float = "auto",
                  modality: str = "auto", ct_window: tuple[float, float] = (-1000.0, 1000.0),
                  device_type: str = "cpu", check_grid: Callable[[Grid, int], None] | None = None,
                  series_uids=()) -> Atlas:
    """Read, check and resample the atlas onto its working grid.

    ``check_grid(grid, num_classes)``, if given, sees the working grid before anything is resampled onto it (a job
    refuses a grid that would not fit its memory there, before allocating it); ``series_uids``: the series of an
    atlas given as a DICOM folder that holds several."""
    image = read_image(image_path, series_uids)
    labels = read_labels(labels_path)
    if not same_grid(image, labels):
        raise file_error(labels_path, f"atlas labels are not on the atlas image's grid (shape {labels.shape} vs "
                                      f"{image.shape}, or a different position/orientation); resample them first")
    values = [int(v) for v in np.unique(labels.array) if v != 0]
    if not values:
        raise file_error(labels_path, "atlas label map is empty (no voxel has a non-zero label)")
    source = Grid(image.shape, image.affine)
    bounds = _label_bounds(labels.array != 0)
    chosen = choose_spacing(spacing, source, bounds, device_type)
    margin = max(8.0, 0.1 * float(np.max((bounds[1] - bounds[0]) * source.spacing)))
    grid = working_grid(source, chosen, bounds_ijk=bounds, margin_mm=margin)
    if check_grid is not None:
        check_grid(grid, len(values) + 1)
    normalization = choose_normalization(image.array, modality, ct_window)
    normalised = torch.from_numpy(normalization.apply(image.array))
    atlas_image = resample(normalised[None], source, grid)[0]
    classes = resample_labels(torch.from_numpy(labels.array), [0] + values, source, grid)
    return Atlas(grid=grid, image=atlas_image, classes=classes, values=[0] + values,
                 table=_label_table(labels, values, label_names), normalization=normalization,
                 source_spacing=[float(s) for s in source.spacing], source_shape=[int(s) for s in source.shape])


@dataclass
class AlignedScan:
    """A scan brought into the working grid: ``image`` (I, J, K) in [0, 1], ``world_map`` atlas world -> scan world,
    and the scan as read (``volume``) so results can be written on its own grid."""

    image: torch.Tensor
    world_map: np.ndarray
    volume: Volume


def align_scan(volume: Volume, grid: Grid, normalization: IntensityNormalization, aligner: AtlasAligner | None,
               device: torch.device = torch.device("cpu")) -> AlignedScan:
    """Normalise ``volume``, find its affine world map to the atlas with ``aligner`` (None: the scans are already
    aligned to the atlas, the identity) and resample it into ``grid``."""
    source = Grid(volume.shape, volume.affine)
    normalised = torch.from_numpy(normalization.apply(volume.array)).to(device)
    world_map = aligner.align(normalised, source) if aligner is not None else np.eye(4)
    image = resample(normalised[None], source, grid, world_map)[0]
    return AlignedScan(image=image, world_map=world_map, volume=volume)
