"""The self-tests' stand-in stories (what each module's self-test runs on a factory Slicer, without PyTorch) on a real
headless scene: the module logic starts jobs from its parameters, reads their progress, cancels, and brings results
into the scene and the model list, with the stand-in engine executable in place of the engine. The stories report
what goes wrong, so a broken result import is caught. ``test_without_torch.py`` runs this file where PyTorch and
MONAI cannot be imported."""

from __future__ import annotations

from types import SimpleNamespace

from lap_fixtures import sequencesLogic  # noqa: F401  (pytest fixture)
from mrml_fixtures import scene, slicerApp  # noqa: F401  (pytest fixtures)
from DistillSegKernelLib import engine
from IncrementalLapLib import frameSegmentation, sampleFrames
from IncrementalLapLib.lapJobControl import LapJobControl
from OneShotSegLib import sampleCase, scanSegmentation
from OneShotSegLib.jobControl import OneShotJobControl


def test_the_oneshot_module_logic_against_the_stand_in_engine(scene, tmp_path):  # noqa: F811
    with engine.standInEngine():
        problems = sampleCase.standInStory(scene, OneShotJobControl(tmp_path / "models"), SimpleNamespace(), tmp_path)
    assert problems == []


def test_the_incrementallap_module_logic_against_the_stand_in_engine(scene, sequencesLogic, tmp_path):  # noqa: F811
    with engine.standInEngine():
        problems = sampleFrames.standInStory(scene, LapJobControl(tmp_path / "models"), SimpleNamespace(), tmp_path,
                                             sequencesLogic)
    assert problems == []


def test_the_stories_catch_results_that_are_not_imported(scene, sequencesLogic, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.setattr(scanSegmentation, "importScanLabels", lambda *arguments: None)
    monkeypatch.setattr(frameSegmentation, "importFrameLabels", lambda *arguments: {})
    with engine.standInEngine():
        oneshot = sampleCase.standInStory(scene, OneShotJobControl(tmp_path / "a"), SimpleNamespace(), tmp_path / "a")
        lap = sampleFrames.standInStory(scene, LapJobControl(tmp_path / "b"), SimpleNamespace(), tmp_path / "b",
                                        sequencesLogic)
    assert oneshot == ["segmenting twice gave [] in 1 segmentation(s)"]
    assert lap == ["the current frame's segmentation lacks the model's structures"]
