"""Random voxel grids and the files other programs write for them, for the property-based geometry tests.

``grids()`` draws a shape and a voxel -> RAS matrix: any rotation (oblique) or an axis permutation (the usual
LPS/RAS-aligned scans), flipped axes, anisotropic spacing, any origin. ``write_input(path, data, affine, variant)``
writes the file as another tool would and returns the matrix every reader must find in it:

- ``nifti-qform``, ``nifti-sform``: only that matrix is set (code 1 "scanner");
- ``nifti-both``, ``nifti-both-aligned``: both set to the same matrix (sform code 1, or 2 "aligned", where 3D Slicer
  reads the qform and nibabel the sform: they must agree);
- ``nifti-default``: neither set: the voxel sizes along the LPS axes, origin 0 (what 3D Slicer/ITK reads);
- ``nrrd-lps``, ``nrrd-ras``: NRRD ``space directions`` in LPS (Slicer's choice) or RAS space.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import nrrd
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
NIFTI_VARIANTS = ["nifti-qform", "nifti-sform", "nifti-both", "nifti-both-aligned", "nifti-default"]
NRRD_VARIANTS = ["nrrd-lps", "nrrd-ras"]
VARIANTS = NIFTI_VARIANTS + NRRD_VARIANTS


def suffix_of(variant: str) -> str:
    return ".nii.gz" if variant.startswith("nifti") else ".nrrd"


@st.composite
def affines(draw) -> np.ndarray:
    """A 4x4 voxel -> RAS matrix: oblique or axis-aligned, flips, spacing 0.3-4 mm, origin within ±150 mm."""
    if draw(st.booleans()):
        rotation = Rotation.from_rotvec(draw(st.lists(st.floats(-3.1, 3.1), min_size=3, max_size=3))).as_matrix()
    else:
        rotation = np.eye(3)[draw(st.permutations([0, 1, 2]))]
    spacing = np.array(draw(st.lists(st.floats(0.3, 4.0), min_size=3, max_size=3)))
    signs = np.array([-1.0 if flip else 1.0 for flip in draw(st.lists(st.booleans(), min_size=3, max_size=3))])
    affine = np.eye(4)
    affine[:3, :3] = rotation @ np.diag(spacing * signs)
    affine[:3, 3] = draw(st.lists(st.floats(-150, 150), min_size=3, max_size=3))
    return affine


def shapes(low: int = 2, high: int = 7):
    return st.tuples(*[st.integers(low, high)] * 3)


def write_input(path: Path, data: np.ndarray, affine: np.ndarray, variant: str) -> np.ndarray:
    """Write ``data`` (I, J, K) on ``affine`` as ``variant``; return the voxel -> RAS matrix the file means."""
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    if variant.startswith("nifti"):
        image = nib.Nifti1Image(data, None)
        image.header.set_zooms(tuple(float(s) for s in spacing))
        codes = {"nifti-qform": (1, 0), "nifti-sform": (0, 1), "nifti-both": (1, 1), "nifti-both-aligned": (1, 2),
                 "nifti-default": (0, 0)}[variant]
        image.header.set_qform(affine if codes[0] else None, code=codes[0])
        image.header.set_sform(affine if codes[1] else None, code=codes[1])
        nib.save(image, str(path))
        return LPS_TO_RAS @ np.diag([*spacing, 1.0]) if variant == "nifti-default" else affine
    matrix = LPS_TO_RAS @ affine if variant == "nrrd-lps" else affine
    nrrd.write(str(path), data, {"space": "left-posterior-superior" if variant == "nrrd-lps" else
                                 "right-anterior-superior", "space directions": matrix[:3, :3].T,
                                 "space origin": matrix[:3, 3]})
    return affine


def reorder(data: np.ndarray, affine: np.ndarray, permutation, flips) -> tuple[np.ndarray, np.ndarray]:
    """The same physical image with its voxels stored in another order: file axes permuted, then flipped.

    ``data`` (I, J, K) on ``affine``; returns (data', affine') with every voxel at the same world position."""
    data = np.transpose(data, permutation)
    affine = affine.copy()
    affine[:, :3] = affine[:, list(permutation)]
    for axis, flip in enumerate(flips):
        if flip:
            data = np.flip(data, axis)
            affine[:3, 3] += affine[:3, axis] * (data.shape[axis] - 1)
            affine[:3, axis] *= -1
    return np.ascontiguousarray(data), affine


def undo_reorder(data: np.ndarray, permutation, flips) -> np.ndarray:
    """Inverse of ``reorder`` on an array stored on the reordered grid (labels computed there)."""
    for axis, flip in enumerate(flips):
        if flip:
            data = np.flip(data, axis)
    return np.transpose(data, np.argsort(permutation))


def world_of_voxels(affine: np.ndarray, shape) -> np.ndarray:
    """World RAS position (N, 3) of every voxel of a grid, in C order of (i, j, k)."""
    ijk = np.stack(np.meshgrid(*[np.arange(s) for s in shape], indexing="ij"), -1).reshape(-1, 3).astype(float)
    return ijk @ affine[:3, :3].T + affine[:3, 3]
