"""A DICOM SEG written by the engine, in Slicer's MRML: its pixel data, read with highdicom and placed by the SEG's
own geometry (frame positions and orientation, LPS), becomes a segmentation node with the SEG's segment names and
colours that lies voxel-exactly on the source scan's grid, the scan read by Slicer from the same series' geometry.
The series is oblique, flipped and anisotropic, so a swapped axis, a lost rotation or an LPS/RAS slip shows."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import random_affine
from dicom_files import LPS_TO_RAS, write_series
from mrml_fixtures import scene, slicerApp  # noqa: F401  (pytest fixtures)
from distillseg.common.dicom_seg import Algorithm, write_seg
from distillseg.common.volume_io import read_image, write_image
from distillseg.contract.labels import LabelEntry, LabelTable
from DistillSegKernelLib import segmentLabels, volumeFiles

import slicer

hd = pytest.importorskip("highdicom")

TABLE = LabelTable([LabelEntry(1, "liver", (200, 100, 50)), LabelEntry(5, "spleen", (10, 200, 30))])


def test_seg_pixels_land_voxel_exactly_on_the_scan_in_a_segmentation_node(scene, tmp_path):
    rng = np.random.default_rng(5)
    affine = random_affine(rng, spacing=(0.8, 1.1, 2.5), flip=(False, True, False))
    write_series(tmp_path / "series", rng.normal(size=(11, 9, 7)), affine)
    volume = read_image(tmp_path / "series")
    labels = np.zeros(volume.shape, np.int32)
    labels[2:7, 1:5, 1:4], labels[8:10, 6:9, 4:7] = 1, 5
    write_seg(tmp_path / "seg.dcm", labels, volume.series, TABLE, Algorithm("test model", "1", "test"))
    write_image(tmp_path / "scan.nrrd", volume.array, volume.affine)
    scan = volumeFiles.readVolumeFile(tmp_path / "scan.nrrd", scene)

    seg = hd.seg.segread(tmp_path / "seg.dcm")
    placed = seg.get_volume(combine_segments=True)  # (slices, rows, columns) segment numbers on an LPS grid
    labelmap = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "SEG")
    # Slicer's (K, J, I) array order is the SEG's (slice, row, column): I = column, J = row, K = slice.
    ijkToRas = LPS_TO_RAS @ placed.affine[:, [2, 1, 0, 3]]
    labelmap.SetIJKToRASMatrix(slicer.util.vtkMatrixFromArray(ijkToRas))
    slicer.util.updateVolumeFromArray(labelmap, np.ascontiguousarray(placed.array.astype(np.uint8)))
    names = LabelTable([LabelEntry(int(s.SegmentNumber), str(s.SegmentLabel), hd.color.CIELabColor.from_dicom_value(
        tuple(s.RecommendedDisplayCIELabValue)).to_rgb()) for s in seg.SegmentSequence])
    segmentation = segmentLabels.newSegmentationFor(scan)
    mapping = segmentLabels.importLabelmap(labelmap, names, segmentation)

    ids = [mapping[1], mapping[2]]
    assert [segmentation.GetSegmentation().GetSegment(i).GetName() for i in ids] == ["liver", "spleen"]
    merged = segmentLabels.mergedLabelArray(segmentation, scan, ids, [1, 5])  # (K, J, I) on the scan's grid
    assert np.array_equal(merged.transpose(2, 1, 0), labels)
