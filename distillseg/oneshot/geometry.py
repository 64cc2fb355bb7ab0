"""Grids and resampling between them, in torch.

A *grid* is a shape (I, J, K) plus a 4x4 voxel -> RAS world matrix. Resampling a source volume onto a destination
grid evaluates, for every destination voxel ``d``, the source at voxel ``src_affine⁻¹ · world_map · dst_affine · d``,
where ``world_map`` (4x4, destination world -> source world, identity by default) carries an affine registration.
Everything is one ``grid_sample`` call with ``align_corners=True`` (voxel centres at -1 and +1), done in slabs along
the first axis when the destination is large, so a 1 mm brain never needs its whole sampling grid in memory.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

@dataclass(frozen=True)
class Grid:
    """A voxel grid: ``shape`` (I, J, K) and ``affine`` (4, 4) voxel -> RAS mm."""

    shape: tuple[int, int, int]
    affine: np.ndarray

    @property
    def spacing(self) -> np.ndarray:
        return np.linalg.norm(self.affine[:3, :3], axis=0)

    def to_json(self) -> dict:
        return {"shape": [int(s) for s in self.shape], "affine": np.asarray(self.affine).tolist()}

    @classmethod
    def from_json(cls, data: dict) -> "Grid":
        return cls(tuple(int(s) for s in data["shape"]), np.asarray(data["affine"], dtype=np.float64))


def voxel_map(src: Grid, dst: Grid, world_map: np.ndarray | None = None) -> np.ndarray:
    """4x4 from destination voxel index to source voxel index."""
    world_map = np.eye(4) if world_map is None else world_map
    return np.linalg.inv(src.affine) @ world_map @ dst.affine


def sampling_grid(index_map: torch.Tensor, src_shape, dst_shape, start: int = 0, stop: int | None = None) -> torch.Tensor:
    """``grid_sample`` grid (1, stop-start, J, K, 3) for destination slab ``start:stop`` along the first axis.

    ``index_map``: (4, 4) tensor, destination voxel index -> source voxel index; gradients flow through it (the
    affine pre-alignment optimises it). Coordinates are normalised with ``align_corners=True``.
    """
    stop = dst_shape[0] if stop is None else stop
    device, dtype = index_map.device, index_map.dtype
    i = torch.arange(start, stop, device=device, dtype=dtype)[:, None, None]
    j = torch.arange(dst_shape[1], device=device, dtype=dtype)[None, :, None]
    k = torch.arange(dst_shape[2], device=device, dtype=dtype)[None, None, :]
    normalised = []
    for axis in range(3):
        row = index_map[axis]
        coordinate = row[0] * i + row[1] * j + row[2] * k + row[3]
        size = src_shape[axis]
        normalised.append(coordinate * (2.0 / (size - 1)) - 1.0 if size > 1 else coordinate * 0.0)
    # grid_sample wants (x, y, z) = (k, j, i) order in the last dimension.
    return torch.stack(torch.broadcast_tensors(normalised[2], normalised[1], normalised[0]), dim=-1)[None]


def resample_slabs(source: torch.Tensor, src: Grid, dst: Grid, world_map: np.ndarray | None = None,
                   mode: str = "bilinear", padding_mode: str = "zeros", slab_voxels: int = 4_000_000):
    """Yield ``(start, stop, values)``: ``source`` (C, I, J, K) on ``src`` resampled onto destination slabs
    ``dst[start:stop]`` (C, stop - start, J', K'), each holding at most ``slab_voxels`` voxels.

    ``world_map``: destination world -> source world (4x4). ``mode``: ``bilinear`` (trilinear) or ``nearest``.
    """
    index_map = torch.as_tensor(voxel_map(src, dst, world_map), dtype=torch.float32, device=source.device)
    step = max(1, slab_voxels // max(dst.shape[1] * dst.shape[2], 1))
    for start in range(0, dst.shape[0], step):
        stop = min(start + step, dst.shape[0])
        grid = sampling_grid(index_map, src.shape, dst.shape, start, stop).to(source.dtype)
        yield start, stop, F.grid_sample(source[None], grid, mode=mode, padding_mode=padding_mode,
                                         align_corners=True)[0]


def resample(source: torch.Tensor, src: Grid, dst: Grid, world_map: np.ndarray | None = None,
             mode: str = "bilinear", padding_mode: str = "zeros") -> torch.Tensor:
    """Resample ``source`` (C, I, J, K) on grid ``src`` onto grid ``dst``: returns (C, *dst.shape)."""
    out = source.new_empty((source.shape[0], *dst.shape))
    for start, stop, values in resample_slabs(source, src, dst, world_map, mode, padding_mode):
        out[:, start:stop] = values
    return out


def resample_argmax(scores: torch.Tensor, src: Grid, dst: Grid, world_map: np.ndarray | None = None,
                    slab_voxels: int = 1_000_000) -> torch.Tensor:
    """Class index (int64, ``dst.shape``) of the largest linearly interpolated score (C, I, J, K); outside the
    source every score is 0 and class 0 (background) wins.

    Exact shortcut: a destination point whose 8 interpolation corners all have the same source argmax gets that
    class (a convex combination of score vectors that share their largest entry keeps it), so the C channels are
    interpolated only near boundaries. Which source cell a point falls in comes from one nearest-neighbour
    ``grid_sample`` of a single-channel cell map, the cheapest lookup torch has (36 classes from a 96 x 96 x 112 grid
    onto a 160 x 192 x 224 scan: 1.0 s instead of 1.4 s with per-point index arithmetic). Slab by slab, so
    C x |slab| floats at most coexist.
    """
    labels = scores.argmax(0)
    if min(src.shape) < 2:
        cells = scores.new_zeros((1, 1, 1))  # no cell has 8 corners: every point is interpolated
    else:
        # Cell n (the cube between voxels n and n + 1) holds its corners' label + 1 when all 8 agree, else 0.
        corners = labels[None, None].float()
        highest = F.max_pool3d(corners, kernel_size=2, stride=1)[0, 0]
        lowest = -F.max_pool3d(-corners, kernel_size=2, stride=1)[0, 0]
        cells = torch.where(highest == lowest, highest + 1, torch.zeros_like(highest))
    # A point at source coordinate p lies in cell round(p - 0.5): the cell map's voxel n sits at source n + 0.5.
    half = np.eye(4)
    half[:3, 3] = 0.5
    cell_grid = Grid(tuple(cells.shape), src.affine @ half)
    index_map = torch.as_tensor(voxel_map(src, dst, world_map), dtype=torch.float32, device=scores.device)
    size = torch.tensor(src.shape, dtype=torch.float32, device=scores.device)
    out = torch.empty(dst.shape, dtype=torch.int64, device=scores.device)
    for start, stop, cell in resample_slabs(cells[None], cell_grid, dst, world_map, mode="nearest",
                                            slab_voxels=slab_voxels):
        slab = cell[0].long() - 1
        hard = (slab < 0).nonzero()  # (h, 3) slab indices of points near a boundary or outside the source
        if len(hard):
            ijk = hard.float()
            ijk[:, 0] += start
            points = ijk @ index_map[:3, :3].T + index_map[:3, 3]
            normalised = (points * (2.0 / (size - 1).clamp_min(1)) - 1.0).flip(-1)  # (k, j, i) order
            values = F.grid_sample(scores[None], normalised[None, :, None, None], align_corners=True)[0, :, :, 0, 0]
            slab[hard[:, 0], hard[:, 1], hard[:, 2]] = values.argmax(0)
        out[start:stop] = slab
    return out


def resample_labels(labels: torch.Tensor, values: list[int], src: Grid, dst: Grid,
                    world_map: np.ndarray | None = None) -> torch.Tensor:
    """Resample an integer label map (I, J, K) by linear interpolation of each label's mask and taking the label
    whose interpolated mask is largest (smoother than nearest neighbour). ``values`` lists the labels (0 included);
    returns the class index 0..len(values)-1 on ``dst`` (int64)."""
    best = torch.full(dst.shape, -1.0, device=labels.device)
    index = torch.zeros(dst.shape, dtype=torch.int64, device=labels.device)
    for class_index, value in enumerate(values):
        mask = (labels == value).float()[None]
        if class_index == 0:
            # Outside the source's field of view counts as background: sample mask - 1 with zero padding.
            score = resample(mask - 1.0, src, dst, world_map, mode="bilinear", padding_mode="zeros")[0] + 1.0
        else:
            score = resample(mask, src, dst, world_map, mode="bilinear", padding_mode="zeros")[0]
        better = score > best
        best = torch.where(better, score, best)
        index = torch.where(better, torch.full_like(index, class_index), index)
    return index


def working_grid(reference: Grid, spacing_mm: float | None, bounds_ijk: tuple[np.ndarray, np.ndarray] | None = None,
                 margin_mm: float = 8.0, multiple: int = 16, minimum: int = 32) -> Grid:
    """A grid with ``reference``'s axis directions, isotropic ``spacing_mm`` (None: the reference's own spacing),
    covering ``bounds_ijk`` (low, high reference voxel indices; default the whole reference) plus ``margin_mm``,
    with each dimension rounded up to a multiple of ``multiple`` (the U-Nets downsample 4 times) and at least
    ``minimum`` (their instance norms need 2 voxels at the bottom: a 16-voxel grid crashed in training)."""
    ref_spacing = np.linalg.norm(reference.affine[:3, :3], axis=0)
    directions = reference.affine[:3, :3] / ref_spacing
    spacing = ref_spacing if spacing_mm is None else np.full(3, float(spacing_mm))
    low, high = (np.zeros(3), np.array(reference.shape, dtype=np.float64) - 1) if bounds_ijk is None else bounds_ijk
    low_mm = np.asarray(low) * ref_spacing - margin_mm
    high_mm = np.asarray(high) * ref_spacing + margin_mm
    # Never reach beyond the reference's own field of view.
    low_mm = np.maximum(low_mm, 0.0)
    high_mm = np.minimum(high_mm, (np.array(reference.shape) - 1) * ref_spacing)
    extent = high_mm - low_mm
    shape = np.maximum(np.ceil(extent / spacing).astype(int) + 1, 1)
    shape = np.maximum(((shape + multiple - 1) // multiple) * multiple, minimum)
    centre_mm = (low_mm + high_mm) / 2  # in reference-aligned mm from reference voxel 0
    origin_mm = centre_mm - (shape - 1) * spacing / 2
    affine = np.eye(4)
    affine[:3, :3] = directions * spacing
    affine[:3, 3] = reference.affine[:3, :3] @ (origin_mm / ref_spacing) + reference.affine[:3, 3]
    return Grid(tuple(int(s) for s in shape), affine)
