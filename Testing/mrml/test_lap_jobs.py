"""The IncrementalLap story on a real headless Slicer scene with the real engine (``distillseg lap`` child processes
through the job runner, CPU, 64x80 SYNTHETIC frames, a few iterations): a base model segments a frame, ``lap learn``
adds a structure from a new patient's annotated frames, the same segmentation keeps its segment IDs and gains one,
scores before/after come from ``lap evaluate`` on the frames marked for checking, every frame of a sequence becomes
a segmentation sequence, an earlier version is restored, a cancelled learning leaves nothing, and the engine's
error sentence reaches the user."""

from __future__ import annotations

import json
import shutil
from types import SimpleNamespace

import numpy as np
import pytest

from lap_fixtures import sequencesLogic  # noqa: F401  (pytest fixture)
from mrml_fixtures import slicerApp  # noqa: F401  (pytest fixture)
from IncrementalLapLib import frameSequences, frameVolumes, lapJobControl, sampleFrames
from IncrementalLapLib.lapJobControl import LapJobControl
from IncrementalLapLib.lapJobs import LearningOptions
from DistillSegKernelLib import jobProtocol, jobRunner, segmentLabels, sequenceBrowsers, volumeFiles
from DistillSegKernelLib.modelStore import ModelStore

TIMEOUT_S = 240


@pytest.fixture(scope="module")
def story(slicerApp, sequencesLogic, tmp_path_factory):  # noqa: F811
    """The whole story once (the tests below look at its results); paths with spaces, as users have them."""
    scene = slicerApp.scene
    scene.Clear(0)
    root = tmp_path_factory.mktemp("lap story")
    store = ModelStore("lap", root / "home dir" / "models")
    result = sampleFrames.runStory(scene, store, root / "work")
    yield SimpleNamespace(result=result, store=store, root=root, scene=scene,
                          frames=root / "work" / "demo frames", control=LapJobControl(store.folder))
    scene.Clear(0)


def _parameters(story, **changes):
    values = dict(selectedModel=story.result.newModel.name, inputFrame=None, outputSegmentation=None,
                  selectedFrames=[], sequenceBrowser=None, trainingSegmentations=[], trainingSequenceBrowser=None,
                  checkSegmentations=[], newStructures="", newModelName="", iterations=None,
                  diffusionIterations=None, device="cpu")
    return SimpleNamespace(**{**values, **changes})


def test_learning_adds_the_new_structure_without_renumbering(story):
    base, new = story.result.baseModel, story.result.newModel
    assert base.labels.names() == {1: "liver", 2: "colon"}
    assert new.labels.names() == {1: "liver", 2: "colon", 3: "stomach"}
    assert new.name == "lap sample step 1" and new.manifest["step"] == 1
    step = new.manifest["history"][1]
    assert step["classes_added"] == ["stomach"] and step["strategy"] == "ours"
    assert step["data"]["patients"] == 1 and step["data"]["frames"] == 2  # patient 02 only (stomach painted or absent)
    assert new.manifest["synthetic_training_data"] is True  # frames from demo-data keep their label through Slicer
    jobs = story.store.jobsFolder()
    assert not jobs.exists() or not any(jobs.iterdir())  # the collected frames are gone once the model exists


def test_segment_ids_are_stable_across_model_versions(story):
    result = story.result
    assert sampleFrames.storyProblems(result) == []  # the module self-test's checks
    assert result.idsBefore == {"liver": "Label_1", "colon": "Label_2"}
    assert result.idsAfter == {"liver": "Label_1", "colon": "Label_2", "stomach": "Label_3"}
    segmentation = result.segmentationNode.GetSegmentation()
    assert np.allclose(segmentation.GetSegment("Label_3").GetColor(), np.array([190, 110, 120]) / 255.0)
    assert result.segmentationNode.GetAttribute("IncrementalLap.Model") == result.newModel.name
    # On the frame's exact grid: the merged label map has the frame's shape and geometry.
    labels = segmentLabels.mergedLabelArray(result.segmentationNode, result.checkFrame, ["Label_1", "Label_2",
                                                                                           "Label_3"], [1, 2, 3])
    assert labels.shape == (1, *sampleFrames.FRAME_SIZE) and set(np.unique(labels)) <= {0, 1, 2, 3}
    reference = frameVolumes.labelmapOnFrame(labels[0], result.checkFrame)
    assert volumeFiles.sameGrid(reference, result.checkFrame, toleranceMm=0.0)


def test_scores_before_and_after_on_the_check_frames(story):
    rows = {row.structure: row for row in story.result.scores}
    assert set(rows) == {"liver", "colon", "stomach"}
    for name in ("liver", "colon"):
        assert rows[name].iouBefore is not None and rows[name].iouAfter is not None
    assert rows["stomach"].iouBefore is None and rows["stomach"].diceBefore is None  # the old version never knew it
    assert all(0.0 <= v <= 1.0 for r in rows.values() for v in (r.iouAfter, r.diceAfter) if v is not None)
    report = json.loads((story.result.newModel.path / lapJobControl.CHECK_AFTER_REPORT).read_text())
    assert report["patients"] == 1 and report["synthetic_data"] is True  # counted, never named


def test_every_frame_of_a_sequence_into_a_segmentation_sequence(story, sequencesLogic):  # noqa: F811
    scene = story.scene
    sequenceNode, browserNode = frameSequences.loadFrameFolderAsSequence(
        story.frames / "multilabel" / sampleFrames.CHECK_PATIENT, scene, sequencesLogic)
    assert sequenceNode.GetNumberOfDataNodes() == sampleFrames.FRAMES_PER_PATIENT
    parameters = _parameters(story, sequenceBrowser=browserNode, selectedModel=story.result.baseModel.name)
    control = story.control
    job = control.startSegmentation(parameters, "sequence", story.root / "seq", None, sequencesLogic)
    assert jobProtocol.waitFor(job, TIMEOUT_S) == jobProtocol.SUCCEEDED
    segmentationSequence = control.finishJob().nodes[0]
    assert sequenceBrowsers.findSegmentationSequence(browserNode) is segmentationSequence
    assert segmentationSequence.GetNumberOfDataNodes() == sequenceNode.GetNumberOfDataNodes()
    for indexValue, frameNode in sequenceBrowsers.itemsOfSequence(sequenceNode):
        item = segmentationSequence.GetDataNodeAtValue(indexValue, True)
        assert segmentLabels.segmentIds(item) == ["Label_1", "Label_2"]
        assert segmentLabels.mergedLabelArray(item, frameNode, ["Label_1"], [1]).shape == (1, 64, 80)
    assert browserNode.GetProxyNode(segmentationSequence) is not None  # what the slice views show while playing

    parameters.selectedModel = story.result.newModel.name  # the next version updates the same sequence in place
    job = control.startSegmentation(parameters, "sequence", story.root / "seq2", None, sequencesLogic)
    assert jobProtocol.waitFor(job, TIMEOUT_S) == jobProtocol.SUCCEEDED
    assert control.finishJob().nodes[0] is segmentationSequence
    for indexValue, _ in sequenceBrowsers.itemsOfSequence(sequenceNode):
        item = segmentationSequence.GetDataNodeAtValue(indexValue, True)
        assert segmentLabels.segmentIds(item) == ["Label_1", "Label_2", "Label_3"]
    assert not (story.root / "seq").exists() and not (story.root / "seq2").exists()


def test_a_first_model_from_annotated_frames(story):
    """No model selected: ``lap train`` learns every annotated structure (names in order of appearance)."""
    pairs = sampleFrames.loadPatientFrames(story.scene, story.frames, sampleFrames.BASE_PATIENT, ["colon", "liver"])
    parameters = _parameters(story, selectedModel="", trainingSegmentations=[s for _, s in pairs])
    options = LearningOptions(**sampleFrames.SELF_TEST_OPTIONS)
    assert jobProtocol.waitFor(story.control.startLearning(parameters, options), TIMEOUT_S) == jobProtocol.SUCCEEDED
    first = story.store.model(story.control.finishJob().modelName)
    assert first.name == "lap model" == parameters.selectedModel == parameters.newModelName
    assert first.labels.names() == {1: "colon", 2: "liver"} and first.manifest["step"] == 0
    assert first.manifest["preprocessing"]["size"] == list(options.workingSize)
    assert not (first.path / lapJobControl.CHECK_AFTER_REPORT).exists()  # no frames were marked for checking


def test_restore_an_earlier_version(story):
    parameters = _parameters(story)
    control = story.control
    assert [s for s, _ in lapJobControl.modelSteps(story.result.newModel)] == [0, 1]
    assert jobProtocol.waitFor(control.startRestore(parameters, 0), TIMEOUT_S) == jobProtocol.SUCCEEDED
    outcome = control.finishJob()
    restored = story.store.model(outcome.modelName)
    assert outcome.modelName == "lap sample step 0 restored" == parameters.selectedModel
    assert restored.labels.names() == {1: "liver", 2: "colon"} and restored.manifest["step"] == 0
    with pytest.raises(lapJobControl.LapJobError, match="has no version of step 5"):
        control.startRestore(parameters, 5)


def test_cancelled_learning_leaves_nothing(story):
    frameNode, segmentationNode = sampleFrames.loadPatientFrames(
        story.scene, story.frames, sampleFrames.NEW_PATIENT, ["abdominal_wall"])[1]
    parameters = _parameters(story, trainingSegmentations=[segmentationNode], newModelName="cancelled")
    control = story.control
    options = LearningOptions(**{**sampleFrames.SELF_TEST_OPTIONS, "iterations": 5000, "diffusionIterations": 0})
    job = control.startLearning(parameters, options)
    while job.running and job.progress.stage != "segmenter":
        jobProtocol.waitFor(job, 0.5)
    assert job.running, job.errorMessage
    job.cancel()
    assert jobProtocol.waitFor(job, 60) == jobProtocol.CANCELLED
    control.abandonJob()
    assert "cancelled" not in [m.name for m in story.store.models()]
    assert not story.store.modelPath("cancelled").exists() and not story.store.checkpointPath("cancelled").exists()
    assert not (story.store.jobsFolder() / "cancelled").exists()


def test_refusals_and_the_engine_error_sentence(story):
    control = story.control
    with pytest.raises(lapJobControl.LapJobError, match="already knows 'liver'"):
        control.startLearning(_parameters(story, newStructures="liver"))
    (story.root / "refused").mkdir()  # the temporary folder the module makes before starting
    with pytest.raises(lapJobControl.LapJobError, match="Select a model first"):
        control.startSegmentation(_parameters(story, selectedModel="", inputFrame=story.result.checkFrame),
                                  "current", story.root / "refused")
    assert not (story.root / "refused").exists()  # a refused start leaves no folder behind
    damaged = story.store.folder / "damaged"
    shutil.copytree(story.result.baseModel.path, damaged)
    weights = damaged / "segmenter.safetensors"
    weights.write_bytes(weights.read_bytes()[:-16] + bytes(16))
    parameters = _parameters(story, selectedModel="damaged", inputFrame=story.result.checkFrame)
    job = control.startSegmentation(parameters, "current", story.root / "damaged run")
    assert jobProtocol.waitFor(job, TIMEOUT_S) == jobProtocol.FAILED
    assert "segmenter.safetensors" in job.errorMessage and "SHA-256" in job.errorMessage
    control.abandonJob()
    assert not (story.root / "damaged run").exists()
