"""Geometry fidelity through the Slicer glue, property-based (hypothesis) over random grids and file variants on a
real slicer-core scene:

- 3D Slicer (ITK, through ``vtkMRMLVolumeArchetypeStorageNode``) and the engine place every voxel of a file at the
  same world position, for NIfTI files with only a qform, only an sform, both (sform code 1 or 2), or neither, and
  for LPS and RAS NRRD files;
- volume node -> engine file -> engine label map -> labelmap node -> segmentation node: the labels land on the
  volume's grid voxel for voxel, and the segments' binary labelmaps share the volume's image-to-world matrix.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import vtk
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mrml_fixtures import scene, slicerApp  # noqa: F401  (pytest fixtures)
from distillseg.contract.labels import LabelTable
from distillseg.common.volume_io import read_image, write_labels
from geometry_cases import VARIANTS, affines, shapes, suffix_of, world_of_voxels, write_input
from DistillSegKernelLib import segmentLabels, volumeFiles

import slicer

PROPERTY = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _node_from_file(scene, data, affine, variant, folder: Path):
    path = folder / f"input{suffix_of(variant)}"
    write_input(path, data, affine, variant)
    return path, volumeFiles.readVolumeFile(path, scene)


def _same_voxels_in_world(affine_a, data_a, affine_b, data_b) -> None:
    """Every voxel of grid A sits exactly on a voxel of grid B holding the same value (same shape, any order)."""
    assert data_a.size == data_b.size
    index = np.linalg.solve(affine_b[:3, :3], (world_of_voxels(affine_a, data_a.shape) - affine_b[:3, 3]).T).T
    np.testing.assert_allclose(index, np.rint(index), atol=1e-3)  # float32 NIfTI matrices: 1e-3 voxel
    index = np.rint(index).astype(int)
    assert np.all(index >= 0) and np.all(index < np.array(data_b.shape))
    np.testing.assert_array_equal(data_b[tuple(index.T)], data_a.reshape(-1))


@given(shape=shapes(), affine=affines(), variant=st.sampled_from(VARIANTS), seed=st.integers(0, 2**16))
@PROPERTY
def test_slicer_and_the_engine_place_every_voxel_alike(scene, shape, affine, variant, seed):
    scene.Clear(0)
    data = np.random.default_rng(seed).permutation(np.prod(shape)).reshape(shape).astype(np.float32)
    with tempfile.TemporaryDirectory() as folder:
        path, node = _node_from_file(scene, data, affine, variant, Path(folder))
        engine = read_image(path)
    slicerData = slicer.util.arrayFromVolume(node).transpose(2, 1, 0)  # KJI -> IJK
    _same_voxels_in_world(engine.affine, engine.array, volumeFiles.ijkToRas(node), slicerData)


@given(shape=shapes(3, 8), affine=affines(), variant=st.sampled_from(VARIANTS), seed=st.integers(0, 2**16))
@PROPERTY
def test_labels_from_the_engine_land_on_the_volumes_grid(scene, shape, affine, variant, seed):
    scene.Clear(0)
    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        _, volume = _node_from_file(scene, rng.normal(size=shape).astype(np.float32), affine, variant, folder)
        # What the module does: the node goes to the engine as a file, the engine's label map comes back.
        engineInput = read_image(volumeFiles.writeVolumeFile(volume, folder / "engine input.nrrd"))
        labels = np.choose(np.digitize(engineInput.array, np.quantile(engineInput.array, [0.3, 0.6, 0.85])),
                           [0, 1, 2, 5])
        write_labels(folder / "labels.nrrd", labels, engineInput.affine)
        labelmap = volumeFiles.readLabelmapOnGrid(folder / "labels.nrrd", volume)
    segmentation = segmentLabels.newSegmentationFor(volume, "result")
    mapping = segmentLabels.importLabelmap(labelmap, LabelTable.defaults([1, 2, 5]), segmentation)
    scene.RemoveNode(labelmap)

    ids, values = list(mapping.values()), list(mapping)
    merged = segmentLabels.mergedLabelArray(segmentation, volume, ids, values)
    np.testing.assert_array_equal(merged, labels.transpose(2, 1, 0))
    expected = volumeFiles.ijkToRas(volume)
    for segmentId in ids:
        representation = segmentation.GetSegmentation().GetSegment(segmentId).GetRepresentation(
            slicer.vtkSegmentationConverter.GetBinaryLabelmapRepresentationName())
        matrix = vtk.vtkMatrix4x4()
        representation.GetImageToWorldMatrix(matrix)
        np.testing.assert_allclose(slicer.util.arrayFromVTKMatrix(matrix), expected, atol=1e-6)
