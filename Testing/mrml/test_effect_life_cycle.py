"""The Segment Editor effects driven as the Segment Editor drives them (``slicer_replay``: registered at startup,
copied, set up, Apply pressed, the QTimer ticking, the editor closed), on a real scene with Slicer's editor logic and
the stand-in engine: the result goes into the segmentation Apply was pressed on, Undo is saved only on that
segmentation, closing the editor stops the timer and the job, the cursor needs no main window, and the help says
that the masking settings do not apply."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from mrml_fixtures import scene, slicerApp  # noqa: F401  (pytest fixtures)
from slicer_replay import (  # noqa: F401  (slicerGui: pytest fixture)
    DEFAULT_CURSOR, REPO, SegmentEditor, loadScriptedModule, slicerGui)
from DistillSegKernelLib import engine, jobProtocol, segmentLabels
from DistillSegKernelLib.jobRunner import runEngine
from DistillSegKernelLib.modelStore import ModelStore
from DistillSegKernelLib.standInEngine import STEP_SECONDS_VARIABLE
from IncrementalLapLib import frameVolumes
from OneShotSegLib import sampleCase

EFFECTS_MODULE = REPO / "SegmentEditorOneShotSeg" / "SegmentEditorOneShotSeg.py"


def _standInModel(method: str, name: str, arguments: list[str]) -> None:
    """A model of the stand-in engine in the user's store (``$ONESHOTSEG_HOME``, set by ``slicerGui``)."""
    job = runEngine(engine.engineCommand([method, "train", *arguments, "--out", ModelStore(method).modelPath(name)]),
                    engine.engineEnvironment(), 60)
    assert job.state == jobProtocol.SUCCEEDED, job.errorMessage


@pytest.fixture
def editor(slicerGui, scene, tmp_path):  # noqa: F811
    """The effects registered at startup and a Segment Editor's copies of them, with a stand-in model of each
    method in the store; every engine command runs the stand-in."""
    names = tmp_path / "labels.json"
    names.write_text(json.dumps({"1": "blob", "3": "box"}))
    with engine.standInEngine():
        _standInModel("oneshot", "one-shot", ["--label-names", names])
        _standInModel("lap", "lap", ["--classes", "liver,colon"])
        loadScriptedModule(EFFECTS_MODULE)
        slicerGui.emit("startupCompleted()")
        editor = SegmentEditor(scene)
        yield editor
        editor.close()


@pytest.fixture
def scan(scene):  # noqa: F811
    return sampleCase.addSampleCase(scene, unlabeledCount=1, shape=(12, 12, 12)).unlabeledVolumes[0]


def _untilDone(effect, timeoutSeconds: float = 60) -> None:
    """Qt's event loop: the effect's timer fires until the effect stops it."""
    deadline = time.monotonic() + timeoutSeconds
    while effect.timer.isActive() and time.monotonic() < deadline:
        effect.timer.fire()
        time.sleep(0.02)
    assert not effect.timer.isActive(), "the job did not end"


def _names(segmentationNode) -> list[str]:
    segmentation = segmentationNode.GetSegmentation()
    return [segmentation.GetSegment(i).GetName() for i in segmentLabels.segmentIds(segmentationNode)]


def test_apply_writes_the_model_structures_with_an_undo_step(editor, scene, scan, slicerGui):  # noqa: F811
    effect = editor.effects["One-shot"]
    assert effect.modelComboBox.items == ["one-shot"] and effect.applyButton.enabled
    target = segmentLabels.newSegmentationFor(scan, "target")
    editor.select(target, scan)
    effect.onApply()
    assert effect.timer.isActive() and effect.cancelButton.enabled
    _untilDone(effect)
    assert slicerGui.errors == [] and effect.statusLabel.text.startswith("Done in")
    assert _names(target) == ["blob", "box"]
    assert editor.history.GetNumberOfStates() == 1
    editor.logic.Undo()
    assert _names(target) == []


def test_undo_is_never_saved_on_another_segmentation(editor, scene, scan, slicerGui):  # noqa: F811
    """Saving the Undo state saves the segmentation the editor has now (``vtkSlicerSegmentEditorLogic``)."""
    effect = editor.effects["One-shot"]
    target, other = (segmentLabels.newSegmentationFor(scan, name) for name in ("target", "other"))
    editor.select(target, scan)
    effect.onApply()
    editor.select(other, scan)  # the user picks another segmentation while the model runs
    _untilDone(effect)
    assert _names(target) == ["blob", "box"] and _names(other) == []
    assert editor.history.GetNumberOfStates() == 0
    assert "'target' was written without an Undo step" in effect.statusLabel.text


def test_a_segmentation_removed_while_the_model_runs_gets_nothing(editor, scene, scan, slicerGui):  # noqa: F811
    effect = editor.effects["One-shot"]
    target = segmentLabels.newSegmentationFor(scan, "target")
    editor.select(target, scan)
    effect.onApply()
    folder = effect.segmentation.folder
    scene.RemoveNode(target)
    _untilDone(effect)
    assert slicerGui.errors == [] and not folder.exists()
    assert effect.statusLabel.text == "The segmentation was removed while the model ran; nothing was written."


def test_the_laparoscopic_effect_segments_the_rgb_frame(editor, scene, slicerGui):  # noqa: F811
    frame = frameVolumes.addFrameNode(scene, np.random.default_rng(0).integers(0, 256, (20, 30, 3), np.uint8), "f")
    target = segmentLabels.newSegmentationFor(frame, "frame segmentation")
    editor.select(target, frame)
    effect = editor.effects["Laparoscopic"]
    effect.onApply()
    _untilDone(effect)
    assert slicerGui.errors == [] and _names(target) == ["liver", "colon"]


def test_closing_the_editor_stops_the_timer_and_the_job(editor, scene, scan, monkeypatch):  # noqa: F811
    """``qMRMLSegmentEditorWidget``'s destructor calls each effect's ``cleanup``."""
    monkeypatch.setenv(STEP_SECONDS_VARIABLE, "5")  # a job still running when the editor closes
    effect = editor.effects["One-shot"]
    editor.select(segmentLabels.newSegmentationFor(scan, "target"), scan)
    effect.onApply()
    job, folder, timer = effect.segmentation.job, effect.segmentation.folder, effect.timer
    try:
        editor.close()
        assert not timer.isActive() and timer.timeout.slots == []
        assert job.state == jobProtocol.CANCELLED and not folder.exists()
    finally:
        job.cancel()
        jobProtocol.waitFor(job, 20)


def test_the_cursor_needs_no_main_window(editor):
    """Under ``--no-main-window`` ``slicer.util.mainWindow()`` is None; the default cursor needs none."""
    for effect in editor.effects.values():
        assert effect.scriptedEffect.createCursor(None) == DEFAULT_CURSOR


def test_the_help_says_the_masking_settings_do_not_apply(editor):
    """The result is written with ``ImportLabelmapToSegmentationNode``, which ignores the editor's masking."""
    for effect in editor.effects.values():
        assert "(editable area, editable intensity range, modify other segments) do not apply" in effect.helpText()
