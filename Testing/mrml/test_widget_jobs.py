"""The module widget base following a job as Slicer drives it (``slicer_replay``: the QTimer ticking, the scene's
``StartCloseEvent`` reaching ``onSceneStartClose``) on a real scene with the stand-in engine: closing the scene while
a job runs cancels it and abandons it, the timer slot keeps working without a parameter node, and nothing is
imported into the next scene; the device list hides what is not offered. The Qt-free part
(``JobControl.sceneClosing``) is checked on its own too."""

from __future__ import annotations

import time

import pytest

from mrml_fixtures import oneshotParameters, scene, slicerApp  # noqa: F401  (pytest fixtures)
from slicer_replay import ParameterNode, slicerGui  # noqa: F401  (slicerGui: pytest fixture)
from DistillSegKernelLib import devices, engine, jobProtocol
from DistillSegKernelLib.jobRunner import runEngine
from DistillSegKernelLib.standInEngine import STEP_SECONDS_VARIABLE
from OneShotSegLib import sampleCase
from OneShotSegLib.jobControl import OneShotJobControl


@pytest.fixture
def control(tmp_path, tmp_path_factory):
    """The OneShotSeg module logic's jobs on a store with a stand-in model; engine = the stand-in."""
    control = OneShotJobControl(tmp_path / "models")
    names = tmp_path / "labels.json"
    names.write_text('{"1": "blob"}')
    with engine.standInEngine():
        job = runEngine(engine.engineCommand(["oneshot", "train", "--label-names", names, "--out",
                                              control.store.modelPath("model")]), engine.engineEnvironment(), 60)
        assert job.state == jobProtocol.SUCCEEDED, job.errorMessage
        yield control


def _segmentation(control, scene, folder):  # noqa: F811
    case = sampleCase.addSampleCase(scene, unlabeledCount=1, shape=(12, 12, 12))
    return control.startSegmentation(oneshotParameters(case, selectedModel="model"), folder)


def test_closing_the_scene_cancels_and_abandons_the_job(control, scene, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.setenv(STEP_SECONDS_VARIABLE, "5")
    job = _segmentation(control, scene, tmp_path / "running")
    control.sceneClosing()
    assert jobProtocol.waitFor(job, 30) == jobProtocol.CANCELLED and not control.finishable
    control.abandonJob()
    assert not (tmp_path / "running").exists()


def test_a_job_that_succeeded_as_the_scene_closed_is_not_finished(control, scene, tmp_path):  # noqa: F811
    job = _segmentation(control, scene, tmp_path / "done")
    assert jobProtocol.waitFor(job, 30) == jobProtocol.SUCCEEDED
    control.sceneClosing()
    assert not control.finishable
    control.abandonJob()
    assert not (tmp_path / "done").exists()


def test_the_widget_survives_the_scene_closing_under_a_running_job(slicerGui, control, scene, tmp_path,  # noqa: F811
                                                                  monkeypatch):
    import qt

    from DistillSegKernelWidgets.engineModuleWidget import EngineModuleWidget

    class Widget(EngineModuleWidget):
        """A module widget whose own hooks do nothing: what is followed here is the shared base."""

        def showUnboundChoices(self):
            pass

        def updateModuleButtons(self, parameters, busy, haveModel):
            pass

    monkeypatch.setenv(STEP_SECONDS_VARIABLE, "0.5")
    widget = Widget()
    widget.logic = control
    widget.ui = type("Ui", (), {})()
    for name, cls in (("progressBar", qt.QProgressBar), ("statusLabel", qt.QLabel), ("deviceLabel", qt.QLabel),
                      ("deviceWarningLabel", qt.QLabel), ("logTextEdit", qt.QPlainTextEdit),
                      ("progressCollapsibleButton", qt.QWidget), ("cancelButton", qt.QPushButton),
                      ("exportModelButton", qt.QPushButton), ("deleteModelButton", qt.QPushButton)):
        setattr(widget.ui, name, cls())
    widget.ui.deviceComboBox = qt.QComboBox()
    for device in devices.DEVICE_CHOICES:  # what the parameter node's Choice binding puts in the list
        widget.ui.deviceComboBox.addItem(device)
    widget._jobTimer = qt.QTimer()
    widget._jobTimer.timeout.connect(widget.onJobTimer)
    widget.setParameterNode(ParameterNode(scene, device="auto", selectedModel="model"))
    offered = devices.offeredDevices()  # here: no MPS, so its row is hidden
    assert {devices.DEVICE_CHOICES[row] for row in widget.ui.deviceComboBox.view().hiddenRows} == \
        set(devices.DEVICE_CHOICES) - set(offered)
    job = _segmentation(control, scene, tmp_path / "running")
    widget.startJob(job, "Segmentation")
    widget.onSceneStartClose(scene, None)  # Slicer: File > Close scene while the job runs
    scene.Clear(0)
    deadline = time.monotonic() + 30
    while widget._jobTimer.isActive() and time.monotonic() < deadline:
        widget._jobTimer.fire()
        time.sleep(0.05)
    assert not widget._jobTimer.isActive() and job.state == jobProtocol.CANCELLED
    assert widget.ui.statusLabel.text.startswith("Cancelled after") and slicerGui.errors == []
    assert not (tmp_path / "running").exists() and scene.GetNumberOfNodesByClass("vtkMRMLSegmentationNode") == 0
