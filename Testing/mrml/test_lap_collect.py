"""Collecting the frames the user annotated into the engine's folder layout, on a real headless Slicer scene: the
engine's own DSAD reader finds exactly the frames, patients and masks that were painted, only for the structures
asked for; partial annotations stay partial; annotations recorded in a segmentation sequence are collected too;
unusable annotations are refused with a sentence; the self-test's checks catch a broken result."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import vtk

from lap_fixtures import sequencesLogic  # noqa: F401  (pytest fixture)
from mrml_fixtures import scene, slicerApp  # noqa: F401  (pytest fixtures)
from distillseg.lap.data import read_labelled_frame
from distillseg.lap.dsad import list_dsad
from distillseg.contract.frames import is_synthetic_folder
from IncrementalLapLib import annotatedFrames, frameSequences, frameVolumes, sampleFrames
from IncrementalLapLib.lapJobControl import ScoreRow
from DistillSegKernelLib import segmentLabels, sequenceBrowsers
from distillseg.contract.labels import LabelEntry, LabelTable

import slicer


def _annotate(scene, frameNode, masks: dict[str, np.ndarray], name="annotation"):
    """A segmentation painted on ``frameNode`` as the Segment Editor leaves it: one segment per structure."""
    segmentationNode = segmentLabels.newSegmentationFor(frameNode, name)
    for structure, mask in masks.items():
        segmentId = segmentationNode.GetSegmentation().AddEmptySegment(structure, structure)
        if mask.any():
            labelmapNode = frameVolumes.labelmapOnFrame(mask.astype(np.uint8), frameNode, scene=scene)
            ids = vtk.vtkStringArray()
            ids.InsertNextValue(segmentId)
            slicer.vtkSlicerSegmentationsModuleLogic.ImportLabelmapToSegmentationNode(labelmapNode, segmentationNode,
                                                                                      ids)
            scene.RemoveNode(labelmapNode)
    return segmentationNode


def _frame(scene, seed, name, patient=None):
    rgb = np.random.default_rng(seed).integers(20, 256, (40, 56, 3), dtype=np.uint8)  # no black border to crop
    node = frameVolumes.addFrameNode(scene, rgb, name)
    if patient:
        node.SetAttribute(frameVolumes.PATIENT_ATTRIBUTE, patient)
    return node, rgb


def _box(r0, r1, c0, c1):
    mask = np.zeros((40, 56), bool)
    mask[r0:r1, c0:c1] = True
    return mask


def test_annotated_frames_in_the_engine_layout(scene, tmp_path):
    frameA, rgbA = _frame(scene, 0, "a", "05 ü")  # a patient name that needs cleaning
    frameB, rgbB = _frame(scene, 1, "b", "06")
    frameC, _ = _frame(scene, 2, "c", "06")
    vesicula = _box(5, 20, 10, 30)
    ureter = _box(30, 35, 0, 50)
    segmentations = [
        _annotate(scene, frameA, {"vesícula": vesicula, "ureter": ureter, "liver": _box(0, 40, 40, 56)}),
        _annotate(scene, frameB, {"Vesícula": np.zeros((40, 56), bool)}),  # annotated: not visible here
        _annotate(scene, frameC, {"liver": _box(0, 10, 0, 10)}),  # no new structure: not collected
    ]
    frames = annotatedFrames.annotatedFramesFromSegmentations(segmentations)
    assert [f.frameNode for f in frames] == [frameA, frameB, frameC]
    assert [f.patient for f in frames] == ["05 ü", "06", "06"]
    collected = annotatedFrames.collectFrames(frames, tmp_path / "collected", ["vesícula", "ureter"])
    assert collected.frameCounts == {"vesícula": 2, "ureter": 1}
    assert collected.pixelCounts == {"vesícula": int(vesicula.sum()), "ureter": int(ureter.sum())}
    assert not (tmp_path / "collected" / "liver").exists()  # old structures are never written
    assert not is_synthetic_folder(tmp_path / "collected")

    records = list_dsad(tmp_path / "collected", ["vesícula", "ureter"], "structures")
    assert len(records) == 2  # frame a is in both structure folders: the engine merges it (same bytes)
    byPatient = {r.patient: r for r in records}
    assert set(byPatient) == {"05_ü", "06"}
    assert byPatient["05_ü"].annotates("vesícula") and byPatient["05_ü"].annotates("ureter")
    assert byPatient["06"].annotates("vesícula") and not byPatient["06"].annotates("ureter")
    image, labels = read_labelled_frame(byPatient["05_ü"], {"vesícula": 1, "ureter": 2}, None)
    assert np.array_equal(image, rgbA)
    assert np.array_equal(labels, vesicula * 1 + ureter * 2)
    image, labels = read_labelled_frame(byPatient["06"], {"vesícula": 1, "ureter": 2}, None)
    assert np.array_equal(image, rgbB) and not labels.any()

    annotatedFrames.requireEveryStructurePainted(collected)
    empty = annotatedFrames.collectFrames(frames[1:2], tmp_path / "empty", ["ureter"])
    with pytest.raises(annotatedFrames.AnnotationError, match="No selected segmentation has a segment named 'ureter'"):
        annotatedFrames.requireEveryStructurePainted(empty)
    onlyEmpty = annotatedFrames.collectFrames(frames[1:2], tmp_path / "empty", ["vesícula"])
    with pytest.raises(annotatedFrames.AnnotationError, match="'vesícula' is not painted on any selected frame"):
        annotatedFrames.requireEveryStructurePainted(onlyEmpty)


def test_every_structure_by_default_and_the_synthetic_marker(scene, tmp_path):
    frame, _ = _frame(scene, 3, "f")
    frame.SetAttribute(frameVolumes.SYNTHETIC_ATTRIBUTE, "1")
    segmentation = _annotate(scene, frame, {"liver": _box(0, 5, 0, 5), "colon": _box(10, 20, 10, 20)})
    collected = annotatedFrames.collectFrames(annotatedFrames.annotatedFramesFromSegmentations([segmentation]),
                                              tmp_path / "check")
    assert collected.structures == ["liver", "colon"] and collected.synthetic
    assert is_synthetic_folder(tmp_path / "check")  # the engine records the model as trained on synthetic data
    assert {r.patient for r in list_dsad(tmp_path / "check", ["liver", "colon"], "structures")} == {"new"}


def test_annotations_recorded_in_a_segmentation_sequence(scene, sequencesLogic, tmp_path):
    frames = [_frame(scene, 10 + i, f"frame {i}")[0] for i in range(4)]
    sequenceNode, browserNode = frameSequences.addFrameSequence(scene, frames, "video", sequencesLogic)
    sequenceNode.SetAttribute(frameVolumes.PATIENT_ATTRIBUTE, "09")
    byIndex = {}
    for indexValue, frameNode in sequenceBrowsers.itemsOfSequence(sequenceNode):
        if indexValue in ("1", "3"):  # the user annotated every second frame
            segmentation = sequenceBrowsers.segmentationOnGrid(scene, frameNode, "annotation")
            byIndex[indexValue] = segmentation
            labelmapNode = frameVolumes.labelmapOnFrame(_box(0, 8 * int(indexValue), 0, 8).astype(np.uint8),
                                                        frameNode, scene=scene)
            segmentLabels.importLabelmap(labelmapNode, LabelTable([LabelEntry(1, "ureter", (250, 250, 200))]),
                                         segmentation)
            scene.RemoveNode(labelmapNode)
    sequenceBrowsers.recordSegmentationSequence(scene, browserNode, byIndex, "video annotations", sequencesLogic)
    frames = annotatedFrames.annotatedFramesFromSequence(browserNode)
    assert len(frames) == 2 and {f.patient for f in frames} == {"09"}
    collected = annotatedFrames.collectFrames(frames, tmp_path / "from sequence", ["ureter"])
    assert collected.frameCounts == {"ureter": 2} and collected.pixelCounts == {"ureter": 8 * 8 + 24 * 8}
    images = sorted((tmp_path / "from sequence" / "ureter" / "09").glob("image*.png"))
    assert np.array_equal(frameVolumes.read_frame(images[1]), frameVolumes.frameArray(sequenceNode.GetNthDataNode(3)))


def test_unusable_annotations_are_refused(scene, tmp_path):
    ct = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "ct")
    slicer.util.updateVolumeFromArray(ct, np.zeros((4, 8, 8), np.int16))
    segmentation = segmentLabels.newSegmentationFor(ct, "ct segmentation")
    with pytest.raises(annotatedFrames.AnnotationError, match="'ct segmentation' was not painted on an RGB frame"):
        annotatedFrames.annotatedFramesFromSegmentations([segmentation])
    frame, _ = _frame(scene, 4, "f")
    frames = annotatedFrames.annotatedFramesFromSegmentations([_annotate(scene, frame, {"a/b": _box(0, 2, 0, 2)})])
    with pytest.raises(annotatedFrames.AnnotationError, match="Structure name 'a/b' cannot be used"):
        annotatedFrames.collectFrames(frames, tmp_path / "bad")
    with pytest.raises(annotatedFrames.AnnotationError, match="No annotated frame is selected"):
        annotatedFrames.collectFrames([], tmp_path / "none")


def test_the_self_tests_checks_catch_a_broken_story(scene):
    """``sampleFrames.storyProblems`` (the module self-test's checks) passes a right result and names what is wrong
    in a broken one."""
    frame, _ = _frame(scene, 5, "f")
    segmentation = segmentLabels.newSegmentationFor(frame)
    table = LabelTable([LabelEntry(1, "liver", (140, 40, 40)), LabelEntry(2, "colon", (200, 140, 60)),
                        LabelEntry(3, "stomach", (190, 110, 120))])
    labelmapNode = frameVolumes.labelmapOnFrame(np.tile(np.arange(56) % 4, (40, 1)).astype(np.uint8), frame)
    segmentLabels.importLabelmap(labelmapNode, table, segmentation)
    model = SimpleNamespace(labels=table)
    scores = [ScoreRow("liver", 0.1, 0.2), ScoreRow("colon", 0.3, 0.3), ScoreRow("stomach", None, 0.5)]
    result = sampleFrames.StoryResult(model, model, frame, segmentation, {"liver": "Label_1", "colon": "Label_2"},
                                      sampleFrames.segmentIdsByName(segmentation), scores)
    assert sampleFrames.storyProblems(result) == []
    result.idsAfter = {**result.idsAfter, "liver": "Label_9"}
    segmentation.GetSegmentation().GetSegment("Label_3").SetColor(0.0, 0.0, 1.0)
    result.scores = scores[:2]
    assert sampleFrames.storyProblems(result) == [
        "the segment ID of liver changed from Label_1 to Label_9",
        "segment stomach has colour [0, 0, 255], the model says [190, 110, 120]",
        "the check frames scored ['colon', 'liver'], not ['colon', 'liver', 'stomach']"]
