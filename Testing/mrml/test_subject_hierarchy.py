"""Results land in the Subject Hierarchy under the input volume's study and patient (so Slicer's Export to DICOM
writes a DICOM SEG that references the source series), on a real scene with Slicer's subject hierarchy node, with
Slicer's GUI behaviour replayed: every data node added gets an item at the scene level
(``Modules/Loadable/SubjectHierarchy/Widgets/qSlicerSubjectHierarchyPluginLogic.cxx``, ``onNodeAdded``)."""

from __future__ import annotations

import numpy as np
import pytest
import vtk

import slicer

from mrml_fixtures import oneshotParameters, scene, slicerApp  # noqa: F401  (pytest fixtures)
from DistillSegKernelLib import engine, jobProtocol, segmentLabels
from DistillSegKernelLib.jobRunner import runEngine
from IncrementalLapLib import frameVolumes
from IncrementalLapLib.lapJobControl import LapJobControl
from OneShotSegLib import sampleCase
from OneShotSegLib.jobControl import OneShotJobControl


@pytest.fixture(params=["Slicer GUI", "no GUI"])
def hierarchy(request, scene):  # noqa: F811
    """The scene's subject hierarchy; with "Slicer GUI", items made for added data nodes as Slicer makes them."""
    hierarchy = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)

    @vtk.calldata_type(vtk.VTK_OBJECT)
    def onNodeAdded(caller, event, node):
        if node.IsA("vtkMRMLDisplayableNode") and not node.GetHideFromEditors():
            hierarchy.CreateItem(hierarchy.GetSceneItemID(), node)

    tag = scene.AddObserver(scene.NodeAddedEvent, onNodeAdded) if request.param == "Slicer GUI" else None
    yield hierarchy
    if tag is not None:
        scene.RemoveObserver(tag)


def _inStudy(hierarchy, node, name):
    """Put ``node`` under a new patient and study, as loading a DICOM series does; returns the study item."""
    study = hierarchy.CreateStudyItem(hierarchy.CreateSubjectItem(hierarchy.GetSceneItemID(), f"{name} patient"),
                                      f"{name} study")
    item = hierarchy.GetItemByDataNode(node) or hierarchy.CreateItem(study, node)
    hierarchy.SetItemParent(item, study)
    return study


def _standInModel(store, method, arguments):
    job = runEngine(engine.engineCommand([method, "train", *arguments, "--out", store.modelPath("model")]),
                    engine.engineEnvironment(), 60)
    assert job.state == jobProtocol.SUCCEEDED, job.errorMessage


def test_a_new_segmentation_of_a_scan_joins_its_study(hierarchy, scene, tmp_path):  # noqa: F811
    case = sampleCase.addSampleCase(scene, unlabeledCount=1, shape=(12, 12, 12))
    scan = case.unlabeledVolumes[0]
    study = _inStudy(hierarchy, scan, "scan")
    control = OneShotJobControl(tmp_path / "models")
    (tmp_path / "labels.json").write_text('{"1": "blob"}')
    with engine.standInEngine():
        _standInModel(control.store, "oneshot", ["--label-names", tmp_path / "labels.json"])
        job = control.startSegmentation(oneshotParameters(case, selectedModel="model"), tmp_path / "run")
        assert jobProtocol.waitFor(job, 60) == jobProtocol.SUCCEEDED, job.errorMessage
    node = control.finishJob().segmentationNode
    assert hierarchy.GetItemParent(hierarchy.GetItemByDataNode(node)) == study


def test_a_new_segmentation_of_a_frame_joins_its_study(hierarchy, scene, tmp_path):  # noqa: F811
    frame = frameVolumes.addFrameNode(scene, np.random.default_rng(0).integers(0, 256, (16, 20, 3), np.uint8), "f")
    study = _inStudy(hierarchy, frame, "frame")
    control = LapJobControl(tmp_path / "models")
    with engine.standInEngine():
        _standInModel(control.store, "lap", ["--classes", "liver"])
        parameters = type("Parameters", (), dict(selectedModel="model", inputFrame=frame, outputSegmentation=None,
                                                 selectedFrames=[], sequenceBrowser=None, device="cpu"))()
        job = control.startSegmentation(parameters, "current", tmp_path / "run")
        assert jobProtocol.waitFor(job, 60) == jobProtocol.SUCCEEDED, job.errorMessage
    node = control.finishJob().nodes[0]
    assert hierarchy.GetItemParent(hierarchy.GetItemByDataNode(node)) == study


def test_a_volume_outside_the_hierarchy_leaves_it_alone(hierarchy, scene):  # noqa: F811
    """A node of no study (nothing to follow): the segmentation stays where Slicer put it."""
    volume = sampleCase.addSampleCase(scene, unlabeledCount=0, shape=(8, 8, 8)).atlasVolume
    hierarchy.RemoveItem(hierarchy.GetItemByDataNode(volume), False, False)
    node = segmentLabels.newSegmentationFor(volume, "alone")
    item = hierarchy.GetItemByDataNode(node)
    assert not item or hierarchy.GetItemParent(item) == hierarchy.GetSceneItemID()
