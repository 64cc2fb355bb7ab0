"""Frame sequences on a real headless Slicer scene with Slicer's own sequences logic (``vtkSlicerSequencesLogic``,
which swaps proxy contents and saves edits as in Slicer) and the stand-in engine: corrections painted on a
segmentation sequence survive a frame change, a frame without a segmentation does not borrow its neighbour's, the
frame a browser shows is segmented as the item on screen (never as a fixed frame), annotations on a proxy are
refused at Learn time, a long video is written for the engine a slice at a time, and segmenting again leaves no
orphan display node behind."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from lap_fixtures import sequencesLogic  # noqa: F401  (pytest fixture)
from mrml_fixtures import scene, slicerApp  # noqa: F401  (pytest fixtures)
from DistillSegKernelLib import engine, jobProtocol, segmentLabels, sequenceBrowsers
from DistillSegKernelLib.jobRunner import runEngine
from IncrementalLapLib import annotatedFrames, frameSegmentation, frameSequences, frameVolumes
from IncrementalLapLib.lapJobControl import LapJobControl, LapJobError
from distillseg.contract.labels import LabelEntry, LabelTable

LIVER = LabelTable([LabelEntry(1, "liver", (200, 0, 0))])


@pytest.fixture
def video(scene, sequencesLogic):  # noqa: F811
    """Four different 24x32 frames in a sequence with its browser; returns ``(sequence, browser)``."""
    rng = np.random.default_rng(5)
    frames = [frameVolumes.addFrameNode(scene, rng.integers(0, 256, (24, 32, 3), dtype=np.uint8), f"frame {i}")
              for i in range(4)]
    return frameSequences.addFrameSequence(scene, frames, "video", sequencesLogic)


@pytest.fixture
def control(tmp_path):
    """The module logic's jobs on a store holding a stand-in model of two structures; engine = the stand-in."""
    control = LapJobControl(tmp_path / "models")
    with engine.standInEngine():
        job = runEngine(engine.engineCommand(["lap", "train", "--classes", "liver,colon", "--out",
                                              control.store.modelPath("lap")]), engine.engineEnvironment(), 60)
        assert job.state == jobProtocol.SUCCEEDED, job.errorMessage
        yield control


def _parameters(**changes):
    values = dict(selectedModel="lap", inputFrame=None, outputSegmentation=None, selectedFrames=[],
                  sequenceBrowser=None, device="cpu")
    return SimpleNamespace(**{**values, **changes})


def _recordLiver(scene, browserNode, sequencesLogic, indexValues):  # noqa: F811
    """A liver segmentation painted on the frames at ``indexValues``, recorded into a segmentation sequence."""
    byIndex = {}
    sequenceNode = browserNode.GetMasterSequenceNode()
    for indexValue in indexValues:
        frameNode = sequenceNode.GetDataNodeAtValue(indexValue, True)
        segmentation = sequenceBrowsers.segmentationOnGrid(scene, frameNode, "annotation")
        labelmapNode = frameVolumes.labelmapOnFrame(np.ones((24, 32), np.uint8), frameNode, scene=scene)
        segmentLabels.importLabelmap(labelmapNode, LIVER, segmentation)
        scene.RemoveNode(labelmapNode)
        byIndex[indexValue] = segmentation
    return sequenceBrowsers.recordSegmentationSequence(scene, browserNode, byIndex, "annotations", sequencesLogic)


def test_corrections_on_a_segmentation_sequence_survive_a_frame_change(scene, video, sequencesLogic):  # noqa: F811
    """``vtkMRMLSequenceBrowserNode`` saves proxy edits only with ``SetSaveChanges`` (default off)."""
    _, browserNode = video
    segmentationSequence = _recordLiver(scene, browserNode, sequencesLogic, ["0", "1", "2", "3"])
    browserNode.GetProxyNode(segmentationSequence).GetSegmentation().AddEmptySegment("ureter", "ureter")
    browserNode.SetSelectedItemNumber(1)
    browserNode.SetSelectedItemNumber(0)
    assert segmentLabels.segmentIds(browserNode.GetProxyNode(segmentationSequence)) == ["Label_1", "ureter"]
    assert segmentLabels.segmentIds(segmentationSequence.GetDataNodeAtValue("0", True)) == ["Label_1", "ureter"]


def test_a_frame_without_annotation_does_not_borrow_its_neighbours(scene, video, sequencesLogic):  # noqa: F811
    _, browserNode = video
    segmentationSequence = _recordLiver(scene, browserNode, sequencesLogic, ["1"])
    for number in range(4):  # the user scrubs through the video
        browserNode.SetSelectedItemNumber(number)
    annotated = [indexValue for _, _, indexValue in frameSequences.annotatedSequenceItems(browserNode)]
    assert annotated == ["1"]
    item = segmentationSequence.GetDataNodeAtValue("2", True)
    assert item is None or segmentLabels.segmentIds(item) == []


def test_the_frame_a_browser_shows_is_segmented_as_the_item_on_screen(scene, video, sequencesLogic, control,  # noqa: F811
                                                                      tmp_path):
    sequenceNode, browserNode = video
    proxy = browserNode.GetProxyNode(sequenceNode)
    for number in (0, 2):
        browserNode.SetSelectedItemNumber(number)
        job = control.startSegmentation(_parameters(inputFrame=proxy), "current", tmp_path / f"run {number}", None,
                                        sequencesLogic)
        assert jobProtocol.waitFor(job, 60) == jobProtocol.SUCCEEDED, job.errorMessage
        outcome = control.finishJob()
    segmentationSequence = outcome.nodes[0]
    assert sequenceBrowsers.findSegmentationSequence(browserNode) is segmentationSequence
    assert [segmentationSequence.GetNthIndexValue(n) for n in range(segmentationSequence.GetNumberOfDataNodes())
            if segmentLabels.segmentIds(segmentationSequence.GetNthDataNode(n))] == ["0", "2"]
    for indexValue in ("0", "2"):  # each item is its own frame's result, not the last one's
        frame = sequenceNode.GetDataNodeAtValue(indexValue, True)
        item = segmentationSequence.GetDataNodeAtValue(indexValue, True)
        labels = segmentLabels.mergedLabelArray(item, frame, segmentLabels.segmentIds(item), [1, 2])[0]
        grey = frameVolumes.frameArray(frame).mean(axis=2)
        assert np.array_equal(labels > 0, grey > grey.mean())
    assert scene.GetNodesByClass("vtkMRMLSegmentationNode").GetNumberOfItems() == 1  # only the proxy
    with pytest.raises(LapJobError, match="Frame 'video' is the one a sequence browser shows"):
        control.startSegmentation(_parameters(selectedFrames=[proxy]), "selected", tmp_path / "refused", None,
                                  sequencesLogic)


def test_annotations_on_a_proxy_are_refused_at_learn_time(scene, video, sequencesLogic):  # noqa: F811
    sequenceNode, browserNode = video
    painted = segmentLabels.newSegmentationFor(browserNode.GetProxyNode(sequenceNode), "painted on the video")
    segmentationSequence = _recordLiver(scene, browserNode, sequencesLogic, ["0"])
    for segmentationNode in (painted, browserNode.GetProxyNode(segmentationSequence)):
        with pytest.raises(annotatedFrames.AnnotationError, match="belongs to the frame sequence browser "
                                                                  "'video browser'"):
            annotatedFrames.annotatedFramesFromSegmentations([segmentationNode], sequencesLogic)


def test_a_long_video_is_written_a_slice_at_a_time(scene, video, control, tmp_path):  # noqa: F811
    _, browserNode = video
    model = control.store.model("lap")
    segmentation = frameSegmentation.startSequenceSegmentation(model, browserNode, tmp_path / "run")
    segmentation.job.sliceSeconds = 0.0  # one frame per poll
    framesFolder = tmp_path / "run" / "frames"
    assert list(framesFolder.glob("*.png")) == [] and segmentation.job.job is None  # nothing written yet
    segmentation.job.poll()
    assert len(list(framesFolder.glob("*.png"))) == 1 and segmentation.job.progress.stage == "writing frames"
    assert jobProtocol.waitFor(segmentation.job, 60) == jobProtocol.SUCCEEDED
    assert len(list(framesFolder.glob("*.png"))) == 4

    cancelled = frameSegmentation.startSequenceSegmentation(model, browserNode, tmp_path / "cancelled")
    cancelled.job.cancel()  # while writing frames: no engine process was started
    assert cancelled.job.state == jobProtocol.CANCELLED and cancelled.job.job is None


def test_segmenting_again_leaves_no_orphan_display_node(scene, video, sequencesLogic, control, tmp_path):  # noqa: F811
    """``vtkMRMLNode::Copy`` of a sequence item would take its references and drop this scene's display node."""
    _, browserNode = video
    for run in range(2):
        job = control.startSegmentation(_parameters(sequenceBrowser=browserNode), "sequence", tmp_path / f"{run}",
                                        None, sequencesLogic)
        assert jobProtocol.waitFor(job, 60) == jobProtocol.SUCCEEDED, job.errorMessage
        control.finishJob()
    displayed = {scene.GetNthNodeByClass(n, "vtkMRMLSegmentationNode").GetDisplayNodeID()
                 for n in range(scene.GetNumberOfNodesByClass("vtkMRMLSegmentationNode"))}
    displays = {scene.GetNthNodeByClass(n, "vtkMRMLSegmentationDisplayNode").GetID()
                for n in range(scene.GetNumberOfNodesByClass("vtkMRMLSegmentationDisplayNode"))}
    assert displays == displayed - {None}
