"""OneShotSeg segments many scans in one job: the checked scans (each into its own segmentation), every time point
of a 4-D scan (into a segmentation sequence played by the same browser, as IncrementalLap does for frames) and
every scan of a folder (into label map files). One engine request each, so one progress bar counts the scans.

The module logic runs on a real headless scene; the stand-in engine answers where only the glue is checked (grids,
sequences, folders, refusals), the real engine where the labels themselves matter (a batch gives each scan the
labels that segmenting it alone gives).
"""

from __future__ import annotations

import os
import shutil
from types import SimpleNamespace

import numpy as np
import pytest

from lap_fixtures import sequencesLogic  # noqa: F401  (pytest fixture)
from mrml_fixtures import oneshotParameters, scene, slicerApp  # noqa: F401  (pytest fixtures)
from DistillSegKernelLib import engine, jobProtocol, segmentLabels, sequenceBrowsers, volumeFiles
from OneShotSegLib import oneshotJobs, sampleCase
from OneShotSegLib.jobControl import OneShotJobControl
from tiny_models import oneshot_fixture

import slicer

TIMEOUT_S = 120.0


def _scans(scene, count: int, seed: int = 1) -> list:
    """``count`` sample scans, each on its own grid (spacing, origin and axis directions differ)."""
    rng = np.random.default_rng(seed)
    nodes = []
    for index in range(count):
        image, _ = sampleCase.syntheticScan(rng, (10 + index, 12, 11))
        node = sampleCase.addVolume(scene, image, f"scan {index}")
        node.SetSpacing(1.0 + 0.25 * index, 1.5, 2.0 - 0.1 * index)
        node.SetOrigin(3.0 * index, -7.0, 11.0 + index)
        node.SetIJKToRASDirections(-1, 0, 0, 0, -1, 0, 0, 0, 1) if index % 2 else None
        nodes.append(node)
    return nodes


def _standInControl(tmp_path, scene) -> tuple[OneShotJobControl, SimpleNamespace]:
    """A module logic whose store holds a stand-in model of the sample case's structures."""
    control = OneShotJobControl(tmp_path / "models")
    case = sampleCase.addSampleCase(scene, unlabeledCount=1, shape=(10, 10, 10))
    parameters = oneshotParameters(case, modelName="batch", iterations=2, augmenterIterations=1)
    jobProtocol.requireSuccess(control.startTraining(parameters), TIMEOUT_S)
    control.finishJob()
    parameters.segmentVolumes, parameters.segmentSequence = [], None
    parameters.segmentFolder = parameters.segmentOutputFolder = ""
    return control, parameters


def _segment(control, parameters, folder, what: str, sequencesLogic=None):  # noqa: F811
    job = control.startSegmentation(parameters, folder, None, what, sequencesLogic)
    jobProtocol.requireSuccess(job, TIMEOUT_S)
    return job, control.finishJob()


def _labels(segmentationNode, volumeNode) -> np.ndarray:
    ids = segmentLabels.segmentIds(segmentationNode)
    values = [segmentLabels.taggedLabelValue(segmentationNode.GetSegmentation().GetSegment(i)) for i in ids]
    return segmentLabels.mergedLabelArray(segmentationNode, volumeNode, ids, values)


def test_checked_scans_are_one_job_and_each_lands_on_its_own_grid(scene, tmp_path):  # noqa: F811
    with engine.standInEngine():
        control, parameters = _standInControl(tmp_path, scene)
        parameters.segmentVolumes = _scans(scene, 3)
        job, outcome = _segment(control, parameters, tmp_path / "work", "checked")
    assert (job.progress.stage, job.progress.step, job.progress.total) == ("segment", 3, 3)  # one bar for all
    assert len(outcome.segmentationNodes) == 3 and outcome.segmentationNode is outcome.segmentationNodes[0]
    for volumeNode, segmentationNode in zip(parameters.segmentVolumes, outcome.segmentationNodes):
        labels = _labels(segmentationNode, volumeNode)
        assert labels.shape == slicer.util.arrayFromVolume(volumeNode).shape and labels.any()
        assert segmentationNode.GetName() == f"{volumeNode.GetName()} batch"
    assert not (tmp_path / "work").exists()  # the temporary scans and label maps are gone


def _fourDScan(scene, sequencesLogic, count: int = 3):  # noqa: F811
    """A volume sequence of ``count`` time points on one grid, with a browser showing it."""
    sequenceNode = scene.AddNewNodeByClass("vtkMRMLSequenceNode", "perfusion")
    sequenceNode.SetIndexName("time")
    sequenceNode.SetIndexUnit("s")
    for node, seconds in zip(_scans(scene, count), range(0, 5 * count, 5)):
        node.CopyOrientation(scene.GetFirstNodeByName("scan 0"))
        sequenceNode.SetDataNodeAtValue(node, str(seconds))
    for node in [scene.GetFirstNodeByName(f"scan {i}") for i in range(count)]:
        scene.RemoveNode(node)
    browserNode = scene.AddNewNodeByClass("vtkMRMLSequenceBrowserNode", "perfusion browser")
    browserNode.SetAndObserveMasterSequenceNodeID(sequenceNode.GetID())
    sequencesLogic.UpdateProxyNodesFromSequences(browserNode)
    return sequenceNode, browserNode


def test_every_time_point_of_a_4d_scan_into_a_segmentation_sequence(scene, sequencesLogic, tmp_path):  # noqa: F811
    with engine.standInEngine():
        control, parameters = _standInControl(tmp_path, scene)
        sequenceNode, browserNode = _fourDScan(scene, sequencesLogic)
        parameters.segmentSequence = browserNode
        job, outcome = _segment(control, parameters, tmp_path / "work", "sequence", sequencesLogic)
        recorded = outcome.segmentationNode
        assert sequenceBrowsers.findSegmentationSequence(browserNode) is recorded
        assert [recorded.GetNthIndexValue(n) for n in range(recorded.GetNumberOfDataNodes())] == ["0", "5", "10"]
        assert (recorded.GetIndexName(), recorded.GetIndexUnit()) == ("time", "s")
        firstIds = None
        for indexValue, volumeNode in sequenceBrowsers.itemsOfSequence(sequenceNode):
            item = recorded.GetDataNodeAtValue(indexValue, True)
            assert _labels(item, volumeNode).any()
            firstIds = firstIds or segmentLabels.segmentIds(item)
            assert segmentLabels.segmentIds(item) == firstIds  # the same segment IDs at every time point
        # Segmenting again updates the same sequence in place: no second sequence, the same IDs.
        _, again = _segment(control, parameters, tmp_path / "work2", "sequence", sequencesLogic)
    assert again.segmentationNode is recorded and recorded.GetNumberOfDataNodes() == 3
    assert segmentLabels.segmentIds(recorded.GetDataNodeAtValue("5", True)) == firstIds
    assert scene.GetNumberOfNodesByClass("vtkMRMLSequenceNode") == 2


def test_a_sequence_of_frames_or_nothing_is_refused_in_one_sentence(scene, sequencesLogic, tmp_path):  # noqa: F811
    with engine.standInEngine():
        control, parameters = _standInControl(tmp_path, scene)
        sequenceNode = scene.AddNewNodeByClass("vtkMRMLSequenceNode", "marks")
        sequenceNode.SetDataNodeAtValue(scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "p"), "0")
        browserNode = scene.AddNewNodeByClass("vtkMRMLSequenceBrowserNode", "marks browser")
        browserNode.SetAndObserveMasterSequenceNodeID(sequenceNode.GetID())
        for browser, expected in ((None, "Select a sequence browser that plays a sequence of scans"),
                                  (browserNode, "holds vtkMRMLMarkupsFiducialNode items, not scalar volumes")):
            parameters.segmentSequence = browser
            with pytest.raises(oneshotJobs.OneShotJobError, match=expected):
                control.startSegmentation(parameters, tmp_path / "work", None, "sequence", sequencesLogic)
            assert not (tmp_path / "work").exists()
        parameters.segmentVolumes = []
        with pytest.raises(oneshotJobs.OneShotJobError, match="Select at least one scan to segment"):
            control.startSegmentation(parameters, tmp_path / "work", None, "checked")


def test_a_folder_of_scans_into_label_map_files_never_replacing_the_users(scene, tmp_path, realModel):  # noqa: F811
    with engine.standInEngine():
        control, parameters = _standInControl(tmp_path, scene)
        scans = tmp_path / "scans"
        for index, node in enumerate(_scans(scene, 2)):
            volumeFiles.writeVolumeFile(node, scans / f"patient {index}.nrrd")
        parameters.segmentFolder, parameters.segmentOutputFolder = str(scans), str(tmp_path / "labels")
        job, outcome = _segment(control, parameters, tmp_path / "work", "folder")
        assert sorted(os.path.basename(f) for f in outcome.files) == ["patient 0_seg.seg.nrrd",
                                                                       "patient 1_seg.seg.nrrd"]
        assert (job.progress.step, job.progress.total) == (2, 2)
    # A file of the user's under an output's name is kept: the real engine refuses the whole job first.
    control, parameters.selectedModel = realModel
    users = tmp_path / "labels real" / "patient 0_seg.seg.nrrd"
    users.parent.mkdir()
    users.write_bytes(b"the user's own file")
    parameters.segmentOutputFolder = str(users.parent)
    job = control.startSegmentation(parameters, tmp_path / "work", None, "folder")
    assert jobProtocol.waitFor(job, TIMEOUT_S) == jobProtocol.FAILED
    control.abandonJob()
    assert "patient 0_seg.seg.nrrd" in job.errorMessage and users.read_bytes() == b"the user's own file"
    assert sorted(p.name for p in users.parent.iterdir()) == ["patient 0_seg.seg.nrrd"]


@pytest.fixture
def realModel(tmp_path_factory, tmp_path):
    """A module logic whose store holds the reliability tests' tiny real model (trained once per session)."""
    control = OneShotJobControl(tmp_path / "real models")
    shutil.copytree(oneshot_fixture(tmp_path_factory).model, control.store.modelPath("tiny real"))
    return control, "tiny real"


def test_a_batch_gives_each_scan_the_labels_it_gets_alone(scene, tmp_path, realModel):  # noqa: F811
    """The real engine: two scans in one request vs each scan on its own (worker requests both)."""
    control, model = realModel
    scans = _scans(scene, 2)
    parameters = SimpleNamespace(selectedModel=model, device="cpu", segmentVolumes=scans, inputVolume=None,
                                 outputSegmentation=None)
    _, batch = _segment(control, parameters, tmp_path / "batch", "checked")
    for volumeNode, together in zip(scans, batch.segmentationNodes):
        parameters.inputVolume, parameters.outputSegmentation = volumeNode, None
        _, alone = _segment(control, parameters, tmp_path / "alone", "current")
        assert np.array_equal(_labels(together, volumeNode), _labels(alone.segmentationNode, volumeNode))
        assert together.GetName() == f"{volumeNode.GetName()} {model}"
