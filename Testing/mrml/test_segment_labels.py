"""Segmentation nodes <-> label maps: names, colours, terminology and label values survive both ways, existing
segmentations are updated in place, and the import can be undone through the segmentation history."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import random_affine
from mrml_fixtures import scene, slicerApp  # noqa: F401  (pytest fixtures)
from distillseg.contract.labels import LabelEntry, LabelTable, read_label_names_json
from distillseg.common.volume_io import read_image, read_labels, write_image
from DistillSegKernelLib import segmentLabels, volumeFiles

import slicer

LIVER = ("Segmentation category and type - 3D Slicer General Anatomy list~SCT^123037004^Anatomical Structure"
         "~SCT^10200004^Liver~^^~Anatomic codes - DICOM master list~^^~^^")
TABLE = LabelTable([LabelEntry(1, "liver", (200, 100, 50), LIVER), LabelEntry(5, "spleen", (10, 200, 30)),
                    LabelEntry(300, "tumour", (250, 250, 0))])


@pytest.fixture
def scan(scene, tmp_path):
    """An oblique, flipped, anisotropic scan node."""
    rng = np.random.default_rng(11)
    write_image(tmp_path / "scan.nrrd", rng.normal(size=(9, 8, 7)).astype(np.float32),
                random_affine(rng, spacing=(0.8, 1.1, 2.5), flip=(False, True, False)))
    return volumeFiles.readVolumeFile(tmp_path / "scan.nrrd", scene)


def _segments(segmentation):
    seg = segmentation.GetSegmentation()
    return {sid: seg.GetSegment(sid) for sid in segmentLabels.segmentIds(segmentation)}


def _import(scan, labels, table, segmentation=None):
    labelmap = volumeFiles.labelmapNodeFromArray(labels, scan)
    segmentation = segmentation or segmentLabels.newSegmentationFor(scan)
    mapping = segmentLabels.importLabelmap(labelmap, table, segmentation)
    scan.GetScene().RemoveNode(labelmap)
    return segmentation, mapping


def test_names_colours_terminology_and_values_survive_a_round_trip(scan, tmp_path):
    rng = np.random.default_rng(0)
    labels = rng.choice([0, 1, 5, 300], size=slicer.util.arrayFromVolume(scan).shape).astype(np.uint16)
    segmentation, mapping = _import(scan, labels, TABLE)

    segments = _segments(segmentation)
    assert sorted(mapping) == [1, 5, 300]
    assert {s.GetName() for s in segments.values()} == {"liver", "spleen", "tumour"}
    liver = segments[mapping[1]]
    assert np.allclose(liver.GetColor(), (200 / 255, 100 / 255, 50 / 255))
    assert liver.GetTerminology() == LIVER
    assert {segments[mapping[v]].GetLabelValue() for v in mapping} == {1, 5, 300}  # not renumbered

    table = segmentLabels.writeLabelFiles(segmentation, scan, tmp_path / "atlas.nrrd", tmp_path / "atlas.json")
    engineLabels = read_labels(tmp_path / "atlas.nrrd")
    np.testing.assert_array_equal(engineLabels.array, labels.transpose(2, 1, 0))
    np.testing.assert_allclose(engineLabels.affine, read_image(volumeFiles.writeVolumeFile(scan, tmp_path / "s.nrrd")).affine,
                               atol=1e-9)
    engineTable = read_label_names_json(tmp_path / "atlas.json")
    assert engineTable.to_json() == table.to_json()
    assert engineTable.names() == {1: "liver", 5: "spleen", 300: "tumour"}
    assert engineTable.entries[0].color == (200, 100, 50) and engineTable.entries[0].terminology == LIVER


def test_hand_painted_segments_get_free_values_and_duplicates_are_refused(scan, tmp_path):
    shape = slicer.util.arrayFromVolume(scan).shape
    labels = np.zeros(shape, dtype=np.uint8)
    labels[1:4, 1:4, 1:4] = 5
    segmentation, _ = _import(scan, labels, TABLE.restricted_to([5]))
    painted = np.zeros(shape, dtype=np.uint8)
    painted[5:7, 2:5, 2:5] = 1
    segmentId = segmentation.GetSegmentation().AddEmptySegment("", "vessel", [0.1, 0.2, 0.9])
    painter = volumeFiles.labelmapNodeFromArray(painted, scan)
    slicer.vtkSlicerSegmentationsModuleLogic.ImportLabelmapToSegmentationNode(
        painter, segmentation, _ids([segmentId]))

    table = segmentLabels.writeLabelFiles(segmentation, scan, tmp_path / "a.nrrd", tmp_path / "a.json")
    assert table.names() == {5: "spleen", 6: "vessel"}  # the tagged value stays, the new one takes the next
    written = read_labels(tmp_path / "a.nrrd").array.transpose(2, 1, 0)
    assert set(np.unique(written[labels == 5])) == {5} and set(np.unique(written[painted == 1])) == {6}

    segmentation.GetSegmentation().AddEmptySegment("", "Vessel", [0, 0, 0])
    with pytest.raises(segmentLabels.SegmentationLabelError, match="two segments named 'Vessel'"):
        segmentLabels.writeLabelFiles(segmentation, scan, tmp_path / "b.nrrd", tmp_path / "b.json")


def test_empty_segmentation_is_refused(scan, tmp_path):
    segmentation = segmentLabels.newSegmentationFor(scan)
    with pytest.raises(segmentLabels.SegmentationLabelError, match="has no segments"):
        segmentLabels.writeLabelFiles(segmentation, scan, tmp_path / "a.nrrd", tmp_path / "a.json")
    segmentation.GetSegmentation().AddEmptySegment("", "liver", [1, 0, 0])
    with pytest.raises(segmentLabels.SegmentationLabelError, match="no painted voxel"):
        segmentLabels.writeLabelFiles(segmentation, scan, tmp_path / "a.nrrd", tmp_path / "a.json")
    assert not (tmp_path / "a.nrrd").exists()


def _ids(ids):
    import vtk

    array = vtk.vtkStringArray()
    for segmentId in ids:
        array.InsertNextValue(segmentId)
    return array


def test_existing_segmentation_is_updated_in_place(scan):
    shape = slicer.util.arrayFromVolume(scan).shape
    segmentation = segmentLabels.newSegmentationFor(scan)
    # The user painted "Liver" by hand (own colour) and keeps a note segment the model knows nothing about.
    handLiver = segmentation.GetSegmentation().AddEmptySegment("", "Liver", [0.0, 0.0, 1.0])
    note = segmentation.GetSegmentation().AddEmptySegment("", "note", [0.5, 0.5, 0.5])
    hand = np.zeros(shape, dtype=np.uint8)
    hand[0:2, 0:2, 0:2] = 1
    hand[6:8, 6:8, 5:7] = 2
    painter = volumeFiles.labelmapNodeFromArray(hand, scan)
    slicer.vtkSlicerSegmentationsModuleLogic.ImportLabelmapToSegmentationNode(painter, segmentation, _ids([handLiver, note]))

    model = np.zeros(shape, dtype=np.uint16)
    model[2:5, 2:5, 2:5] = 1
    model[5:7, 0:3, 0:3] = 300
    _, mapping = _import(scan, model, TABLE, segmentation)

    assert mapping[1] == handLiver  # found by name, updated in place
    segments = _segments(segmentation)
    assert segments[handLiver].GetColor() == (0.0, 0.0, 1.0)  # the user's colour is kept
    assert set(segments) == {handLiver, note, mapping[5], mapping[300]}
    liverArray = _segmentArray(segmentation, handLiver, scan)
    np.testing.assert_array_equal(liverArray, model == 1)  # content replaced, not merged
    np.testing.assert_array_equal(_segmentArray(segmentation, note, scan), hand == 2)  # untouched

    # A second model version: the same structures land in the same segments (by tag), nothing is duplicated.
    model2 = np.zeros(shape, dtype=np.uint16)
    model2[3:6, 3:6, 3:6] = 1
    _, mapping2 = _import(scan, model2, TABLE, segmentation)
    assert mapping2 == mapping
    assert set(_segments(segmentation)) == set(segments)
    np.testing.assert_array_equal(_segmentArray(segmentation, handLiver, scan), model2 == 1)
    assert not _segmentArray(segmentation, mapping[300], scan).any()


def _segmentArray(segmentation, segmentId, reference):
    merged = segmentLabels.mergedLabelArray(segmentation, reference, [segmentId], [1])
    return merged == 1


def test_import_is_undone_by_the_segmentation_history(scan):
    shape = slicer.util.arrayFromVolume(scan).shape
    first = np.zeros(shape, dtype=np.uint16)
    first[1:3, 1:3, 1:3] = 5
    segmentation, mapping = _import(scan, first, TABLE.restricted_to([5]))
    history = slicer.vtkSegmentationHistory()
    history.SetSegmentation(segmentation.GetSegmentation())
    history.SaveState()  # what the effect's saveStateForUndo() does before it writes

    second = np.zeros(shape, dtype=np.uint16)
    second[4:8, 4:8, 4:6] = 1
    second[0:2, 5:7, 5:7] = 5
    _import(scan, second, TABLE, segmentation)
    assert len(_segments(segmentation)) == 3

    assert history.RestorePreviousState()
    segments = _segments(segmentation)
    assert list(segments) == [mapping[5]]
    np.testing.assert_array_equal(_segmentArray(segmentation, mapping[5], scan), first == 5)


def test_label_table_json_is_what_the_engine_reads(scan, tmp_path):
    labels = np.zeros(slicer.util.arrayFromVolume(scan).shape, dtype=np.uint16)
    labels[2:4, 2:4, 2:4] = 300
    segmentation, _ = _import(scan, labels, TABLE.restricted_to([300]))
    segmentLabels.writeLabelFiles(segmentation, scan, tmp_path / "a.nrrd", tmp_path / "a.json")
    data = json.loads((tmp_path / "a.json").read_text())
    assert data[0]["value"] == 300 and data[0]["name"] == "tumour" and data[0]["color"] == [250, 250, 0]
    assert read_labels(tmp_path / "a.nrrd").array.dtype == np.int32 and read_labels(tmp_path / "a.nrrd").array.max() == 300
