"""Hidden module that registers the extension's Segment Editor effects at startup (Slicer's scripted-effect shape):
"One-shot" (3D scans, OneShotSeg models) and "Laparoscopic" (RGB frames, IncrementalLap models)."""

import os

import slicer
from slicer.i18n import tr as _
from slicer.ScriptedLoadableModule import ScriptedLoadableModule, ScriptedLoadableModuleTest

from DistillSegKernelWidgets.moduleDescription import describeModule


class SegmentEditorOneShotSeg(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        describeModule(
            self.parent, _("Segment Editor OneShotSeg effects"), hidden=True,
            dependencies=["Segmentations", "DistillSegKernel", "OneShotSeg", "IncrementalLap"],
            helpText=_("This hidden module registers two Segment Editor effects: One-shot segments the source volume "
                       "with a model trained in the OneShotSeg module, Laparoscopic segments the source frame with a "
                       "model of the IncrementalLap module."))
        slicer.app.connect("startupCompleted()", self.registerEditorEffect)

    def registerEditorEffect(self):
        import qSlicerSegmentationsEditorEffectsPythonQt as qSlicerSegmentationsEditorEffects

        # Slicer looks each effect's class up in sys.modules under the effect file's folder name, and only when it
        # is not there executes the file itself as a plain module of that name (qSlicerSegmentEditorScriptedEffect::
        # setPythonSource), which would replace this package by one effect file. Imported first, the package is
        # what Slicer finds: it holds every effect class, and clones are made from the same classes.
        import SegmentEditorOneShotSegLib  # noqa: F401

        for fileName in ("SegmentEditorEffect.py", "SegmentEditorLapEffect.py"):
            instance = qSlicerSegmentationsEditorEffects.qSlicerSegmentEditorScriptedEffect(None)
            effectFilename = os.path.join(os.path.dirname(__file__), self.__class__.__name__ + "Lib", fileName)
            instance.setPythonSource(effectFilename.replace("\\", "/"))
            instance.self().register()


class SegmentEditorOneShotSegTest(ScriptedLoadableModuleTest):
    """The effects are registered and offered by the Segment Editor (their segmentation is tested with the modules)."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_EffectIsRegistered()

    def test_EffectIsRegistered(self):
        segmentEditorWidget = slicer.qMRMLSegmentEditorWidget()
        segmentEditorWidget.setMRMLScene(slicer.mrmlScene)
        segmentEditorNode = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentEditorNode")
        segmentEditorWidget.setMRMLSegmentEditorNode(segmentEditorNode)
        for name in ("One-shot", "Laparoscopic"):
            self.assertIn(name, segmentEditorWidget.availableEffectNames())
            segmentEditorWidget.setActiveEffectByName(name)
            self.assertIsNotNone(segmentEditorWidget.activeEffect())
        self.delayDisplay("Test passed")
