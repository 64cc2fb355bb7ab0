"""A headless Slicer application on slicer-core (Slicer's MRML and logic libraries, no Qt): a scene with the
application logic and the module logics the extension's Libs use registered on it, as Slicer's modules register
theirs. Used by the glue tests' fixtures and by scripts that run the module Libs outside Slicer."""

from __future__ import annotations

from types import SimpleNamespace

import slicer


def headlessApplication(withSequences: bool = False) -> SimpleNamespace:
    """``scene``, ``appLogic`` and ``logics`` (Colors, Volumes, Segmentations, Data, and Sequences if asked: setting
    its scene registers the sequence browser node class and lets browsers update their proxy nodes). The Data logic
    removes a removed node's display and storage nodes, as in Slicer (``vtkSlicerDataModuleLogic.cxx``)."""
    scene = slicer.vtkMRMLScene()
    appLogic = slicer.vtkSlicerApplicationLogic()
    appLogic.SetMRMLScene(scene)
    appLogic.GetColorLogic().SetMRMLScene(scene)
    appLogic.GetColorLogic().AddDefaultColorNodes()
    logics = {}
    classes = [("Colors", slicer.vtkMRMLColorLogic), ("Volumes", slicer.vtkSlicerVolumesLogic),
               ("Segmentations", slicer.vtkSlicerSegmentationsModuleLogic), ("Data", slicer.vtkSlicerDataModuleLogic)]
    if withSequences:
        classes.append(("Sequences", slicer.vtkSlicerSequencesLogic))
    for name, logicClass in classes:
        logic = logicClass()
        logic.SetMRMLScene(scene)
        logic.SetMRMLApplicationLogic(appLogic)
        appLogic.SetModuleLogic(name, logic)
        logics[name] = logic
    return SimpleNamespace(scene=scene, appLogic=appLogic, logics=logics)
