"""Volume nodes <-> engine files keep every voxel and the exact geometry (oblique, flipped, anisotropic; LPS NRRD
and RAS NIfTI inputs), and engine label maps come back only when they lie exactly on the scan's grid."""

from __future__ import annotations

import nibabel as nib
import nrrd
import numpy as np
import pytest

from conftest import random_affine
from mrml_fixtures import scene, slicerApp  # noqa: F401  (pytest fixtures)
from distillseg.common.volume_io import read_image, read_labels, write_labels
from DistillSegKernelLib import volumeFiles

import slicer

GEOMETRIES = {
    "oblique": dict(spacing=(0.7, 1.3, 2.5), flip=(False, False, False)),
    "flipped-one-axis": dict(spacing=(1.0, 1.0, 3.0), flip=(True, False, False)),
    "flipped-two-axes": dict(spacing=(0.5, 2.0, 1.2), flip=(True, False, True)),
}


def _writeInput(path, data, affine):
    """An input file as another tool would write it: NIfTI in RAS, or NRRD with an LPS header."""
    if path.name.endswith(".nii.gz"):
        nib.save(nib.Nifti1Image(data, affine), str(path))
    else:
        lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ affine
        nrrd.write(str(path), data, {"space": "left-posterior-superior", "space directions": lps[:3, :3].T,
                                     "space origin": lps[:3, 3]})


def _worldIndex(affine, ijk):
    """World RAS points of voxel indices (N, 3)."""
    return (affine[:3, :3] @ ijk.T).T + affine[:3, 3]


@pytest.mark.parametrize("suffix", [".nii.gz", ".nrrd"])
@pytest.mark.parametrize("geometry", sorted(GEOMETRIES))
def test_volume_to_engine_file_is_exact(scene, tmp_path, suffix, geometry):
    rng = np.random.default_rng(len(geometry) + len(suffix))
    affine = random_affine(rng, **GEOMETRIES[geometry])
    data = rng.normal(size=(6, 7, 5)).astype(np.float32)
    source = tmp_path / f"scan{suffix}"
    _writeInput(source, data, affine)

    volume = volumeFiles.readVolumeFile(source, scene)
    written = read_image(volumeFiles.writeVolumeFile(volume, tmp_path / "for engine.nrrd"))

    # The engine sees exactly the node: same voxels (K, J, I in Slicer = I, J, K in the file) and matrix.
    np.testing.assert_array_equal(written.array.transpose(2, 1, 0), slicer.util.arrayFromVolume(volume))
    np.testing.assert_allclose(written.affine, volumeFiles.ijkToRas(volume), atol=1e-9)
    # ... and the same physical image as the original file, voxel by voxel (Slicer may reorder a left-handed grid).
    ijk = np.argwhere(np.ones(data.shape, dtype=bool)).astype(float)
    mapped = np.linalg.solve(written.affine[:3, :3], (_worldIndex(affine, ijk) - written.affine[:3, 3]).T).T
    # NIfTI stores its matrix in float32, hence 1e-4 voxel rather than 1e-9.
    np.testing.assert_allclose(mapped, np.rint(mapped), atol=1e-4)
    index = np.rint(mapped).astype(int)
    np.testing.assert_array_equal(written.array[tuple(index.T)], data[tuple(ijk.astype(int).T)])


@pytest.mark.parametrize("geometry", sorted(GEOMETRIES))
def test_engine_labels_come_back_on_the_scan_grid(scene, tmp_path, geometry):
    rng = np.random.default_rng(7)
    affine = random_affine(rng, **GEOMETRIES[geometry])
    _writeInput(tmp_path / "scan.nrrd", rng.normal(size=(5, 6, 7)).astype(np.float32), affine)
    volume = volumeFiles.readVolumeFile(tmp_path / "scan.nrrd", scene)
    engineInput = read_image(volumeFiles.writeVolumeFile(volume, tmp_path / "input.nrrd"))
    labels = rng.choice([0, 1, 2, 9], size=engineInput.shape)
    write_labels(tmp_path / "labels.nrrd", labels, engineInput.affine)

    labelmap = volumeFiles.readLabelmapOnGrid(tmp_path / "labels.nrrd", volume)
    np.testing.assert_array_equal(slicer.util.arrayFromVolume(labelmap), labels.transpose(2, 1, 0))
    assert volumeFiles.sameGrid(labelmap, volume)
    # Written back for the engine (e.g. as an atlas), it is again the same file content.
    back = read_labels(volumeFiles.writeVolumeFile(labelmap, tmp_path / "again.nrrd"))
    np.testing.assert_array_equal(back.array, labels)
    np.testing.assert_allclose(back.affine, engineInput.affine, atol=1e-9)


def test_label_map_off_the_grid_is_refused(scene, tmp_path):
    rng = np.random.default_rng(3)
    affine = random_affine(rng)
    _writeInput(tmp_path / "scan.nrrd", rng.normal(size=(5, 6, 7)).astype(np.float32), affine)
    volume = volumeFiles.readVolumeFile(tmp_path / "scan.nrrd", scene)
    shifted = affine.copy()
    shifted[:3, 3] += 0.5
    write_labels(tmp_path / "labels.nrrd", np.ones((5, 6, 7), dtype=np.uint8), shifted)
    count = scene.GetNumberOfNodes()
    with pytest.raises(volumeFiles.VolumeFileError, match="not on the grid of 'scan'"):
        volumeFiles.readLabelmapOnGrid(tmp_path / "labels.nrrd", volume)
    assert scene.GetNumberOfNodes() == count  # no half-imported node left in the scene


def test_rgb_and_single_slice_volumes_are_refused(scene):
    rgb = scene.AddNewNodeByClass("vtkMRMLVectorVolumeNode", "frame")
    slicer.util.updateVolumeFromArray(rgb, np.zeros((1, 8, 8, 3), dtype=np.uint8))
    with pytest.raises(volumeFiles.VolumeFileError, match="'frame' is an RGB/vector volume"):
        volumeFiles.checkScalarVolume(rgb, "atlas")
    flat = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "slice")
    slicer.util.updateVolumeFromArray(flat, np.zeros((1, 8, 8), dtype=np.float32))
    with pytest.raises(volumeFiles.VolumeFileError, match="'slice' is a single slice"):
        volumeFiles.checkScalarVolume(flat)
