"""The job runner driving the real engine CLI on a tiny case (24^3 scans, 2 iterations, CPU): progress parsed, the
trained model segments a scan into a segmentation node on its grid, cancel leaves no bundle or temporary files behind
and Resume finishes the training, and the engine's error sentence reaches the user."""

from __future__ import annotations

import time

import numpy as np
import pytest

from mrml_fixtures import oneshotParameters, scene, slicerApp  # noqa: F401  (pytest fixtures)
from distillseg.common.volume_io import read_image, write_labels
from distillseg.contract.errors import UserError
from DistillSegKernelLib import jobProtocol, jobRunner, segmentLabels, volumeFiles
from OneShotSegLib import oneshotJobs, sampleCase
from DistillSegKernelLib.engine import engineCommand, engineEnvironment
from OneShotSegLib.jobControl import OneShotJobControl
from DistillSegKernelLib.modelStore import ModelStore

import slicer
from conftest import ENGINE_THREADS

TINY = dict(iterations=2, augmenterIterations=2, device="cpu", prealign=False, threads=int(ENGINE_THREADS))
TIMEOUT_S = 240


@pytest.fixture
def store(tmp_path):
    return ModelStore(oneshotJobs.METHOD, tmp_path / "home" / "models")


def test_train_then_segment_as_the_module_does(scene, tmp_path):
    """Train, then segment twice into the same segmentation node, through the module logic's job control."""
    control = OneShotJobControl(tmp_path / "home" / "models")
    case = sampleCase.addSampleCase(scene, unlabeledCount=2)
    parameters = oneshotParameters(case)
    events = []
    job = control.startTraining(parameters)
    job.onEvent = events.append
    assert control.busy
    assert jobProtocol.waitFor(job, TIMEOUT_S) == jobProtocol.SUCCEEDED, job.errorMessage
    assert job.device == "cpu" and job.deviceDescription.startswith("cpu")
    stages = [e["stage"] for e in events if e["event"] == "progress"]
    assert "augmenter" in stages and "distill" in stages
    assert job.progress.stage == "distill" and job.progress.step == job.progress.total == 2
    assert isinstance(job.progress.loss, float) and job.progress.etaSeconds is not None
    assert "distill 2/2" in jobProtocol.describeProgress(job.progress)
    assert job.result is not None and job.exitCode == 0
    outcome = control.finishJob()
    assert outcome.kind == "training" and parameters.selectedModel == "tiny" == outcome.modelName
    assert not (control.store.jobsFolder() / "tiny").exists()  # input copies gone once the model exists
    assert control.store.model("tiny").labels.names() == {1: "blob", 3: "box"}

    nodes = []
    for _ in range(2):  # the second run updates the first run's segmentation in place
        job = control.startSegmentation(parameters, tmp_path / "segment")
        assert jobProtocol.waitFor(job, TIMEOUT_S) == jobProtocol.SUCCEEDED, job.errorMessage
        outcome = control.finishJob()
        nodes.append(outcome.segmentationNode)
        assert parameters.outputSegmentation is outcome.segmentationNode
    assert nodes[0] is nodes[1] and not (tmp_path / "segment").exists()
    job = control.startSegmentation(parameters, tmp_path / "cancelled")
    job.poll()  # the scan is written for the engine (at the first poll) and the request sent
    job.cancel()
    assert jobProtocol.waitFor(job, 60) == jobProtocol.CANCELLED
    assert list((tmp_path / "cancelled").rglob("*.nrrd"))
    control.abandonJob()
    assert not (tmp_path / "cancelled").exists()  # a cancelled or failed segmentation leaves no files
    (tmp_path / "refused").mkdir()  # the temporary folder the module makes before starting
    with pytest.raises(UserError):
        control.startSegmentation(oneshotParameters(case, selectedModel="gone"), tmp_path / "refused")
    assert not (tmp_path / "refused").exists()  # nor does a refused start
    node, scan = nodes[0], case.unlabeledVolumes[0]
    segments = {sid: node.GetSegmentation().GetSegment(sid) for sid in segmentLabels.segmentIds(node)}
    assert {s.GetName() for s in segments.values()} == {"blob", "box"}  # not duplicated by the second run
    assert {segmentLabels.taggedLabelValue(s) for s in segments.values()} == {1, 3}
    assert np.allclose(segments[segmentLabels.segmentIds(node)[0]].GetColor(), (230 / 255, 159 / 255, 0))
    labels = segmentLabels.mergedLabelArray(node, scan, list(segments), [1, 3])
    assert labels.shape == slicer.util.arrayFromVolume(scan).shape and set(np.unique(labels)) <= {0, 1, 3}


def test_a_new_training_never_overwrites(scene, tmp_path):
    control = OneShotJobControl(tmp_path / "models")
    (control.store.folder / "tiny.checkpoint").mkdir(parents=True)  # an unfinished training of that name
    case = sampleCase.addSampleCase(scene, unlabeledCount=1)
    parameters = oneshotParameters(case)
    job = control.startTraining(parameters)
    job.cancel()
    assert jobProtocol.waitFor(job, 60) == jobProtocol.CANCELLED
    control.abandonJob()
    assert parameters.modelName == "tiny 2"
    assert not control.canResume("tiny")  # a checkpoint alone, without its inputs and options, is not resumable


def _runUntil(job, condition):
    deadline = time.monotonic() + TIMEOUT_S
    while job.running and not condition() and time.monotonic() < deadline:
        job.poll()
        time.sleep(0.05)
    assert condition(), job.errorMessage


def test_cancel_leaves_no_bundle_and_resume_continues(scene, store):
    case = sampleCase.addSampleCase(scene, unlabeledCount=2)
    inputs = oneshotJobs.prepareTraining(store, "cancelled", case.atlasVolume, case.atlasSegmentation,
                                         case.unlabeledVolumes)
    options = oneshotJobs.TrainingOptions(**{**TINY, "iterations": 400, "checkpointEvery": 2})
    job = oneshotJobs.startTraining(store, "cancelled", inputs, options)
    _runUntil(job, lambda: job.progress.stage == "distill" and job.progress.step >= 3)  # a checkpoint at step 2
    job.cancel()
    assert jobProtocol.waitFor(job, 60) == jobProtocol.CANCELLED
    assert job.errorMessage is None
    assert not store.modelPath("cancelled").exists()
    assert [p.name for p in store.folder.iterdir() if p.name.startswith(".cancelled.tmp")] == []
    assert store.models() == [] and store.unfinishedTrainings() == ["cancelled"]
    control = OneShotJobControl(store.folder)
    assert control.canResume("cancelled")  # what enables the module's Resume button

    # What the module's Resume button does: reload the kept inputs and options, continue from the checkpoint.
    events = []
    resumed = oneshotJobs.startTraining(store, "cancelled", oneshotJobs.TrainingInputs.load(inputs.folder), None,
                                        resume=True, onEvent=events.append)
    _runUntil(resumed, lambda: any(e.get("stage") == "distill" for e in events))
    stages = [e["stage"] for e in events if e["event"] == "progress"]
    first = next(e for e in events if e.get("stage") == "distill")
    assert "augmenter" not in stages and first["step"] >= 3, events  # continued in distill, not restarted
    resumed.cancel()
    assert jobProtocol.waitFor(resumed, 60) == jobProtocol.CANCELLED and not store.modelPath("cancelled").exists()


def test_engine_error_sentence_reaches_the_user(scene, tmp_path):
    store = ModelStore(oneshotJobs.METHOD, tmp_path / "Bénédicte's scans" / "models")  # spaces, non-ASCII, quote
    case = sampleCase.addSampleCase(scene, unlabeledCount=1)
    inputs = oneshotJobs.prepareTraining(store, "empty", case.atlasVolume, case.atlasSegmentation,
                                         case.unlabeledVolumes)
    atlas = read_image(inputs.atlasImage)
    write_labels(inputs.atlasLabels, np.zeros(atlas.shape, dtype=np.uint8), atlas.affine)  # an atlas without labels
    job = oneshotJobs.startTraining(store, "empty", inputs, oneshotJobs.TrainingOptions(**TINY))
    assert jobProtocol.waitFor(job, TIMEOUT_S) == jobProtocol.FAILED
    assert job.exitCode == 2
    assert job.errorMessage == f"{inputs.atlasLabels}: atlas label map is empty (no voxel has a non-zero label)."
    assert not store.modelPath("empty").exists()


def test_user_error_without_jsonl_and_crash_messages(tmp_path):
    """A verb without JSON progress (``model info``) still gives its sentence; a crash gives its last stderr line."""
    job = jobRunner.runEngine(engineCommand(["model", "info", str(tmp_path)]), engineEnvironment(), TIMEOUT_S)
    assert job.state == jobProtocol.FAILED and job.exitCode == 2
    assert job.errorMessage == f"{tmp_path}: not a model bundle (no manifest.json in the folder)."
    crash = jobRunner.runEngine([engineCommand([])[0], "-c", "import sys; print('oops', file=sys.stderr); sys.exit(7)"])
    assert crash.state == jobProtocol.FAILED and crash.errorMessage == "The engine stopped unexpectedly (exit code 7): oops"


def test_volume_sent_to_the_engine_is_what_segment_reads(scene, tmp_path):
    """The file a segmentation job writes for the engine is the scan node, voxel for voxel."""
    case = sampleCase.addSampleCase(scene, unlabeledCount=1)
    path = volumeFiles.writeVolumeFile(case.unlabeledVolumes[0], tmp_path / "input.nrrd")
    np.testing.assert_array_equal(read_image(path).array.transpose(2, 1, 0),
                                  slicer.util.arrayFromVolume(case.unlabeledVolumes[0]))
