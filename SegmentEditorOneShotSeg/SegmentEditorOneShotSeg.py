"""Hidden module that registers the "One-shot" Segment Editor effect at startup (Slicer's scripted-effect shape)."""

import os

import slicer
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.ScriptedLoadableModule import ScriptedLoadableModule, ScriptedLoadableModuleTest


class SegmentEditorOneShotSeg(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("Segment Editor One-shot effect")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Segmentation")]
        self.parent.dependencies = ["Segmentations", "OneShotSeg"]
        self.parent.contributors = ["OneShotSeg developers"]
        self.parent.hidden = True
        self.parent.helpText = _("This hidden module registers the One-shot effect of the Segment Editor, which "
                                 "segments the source volume with a model trained in the OneShotSeg module.")
        self.parent.acknowledgementText = _("Part of the OneShotSeg extension.")
        slicer.app.connect("startupCompleted()", self.registerEditorEffect)

    def registerEditorEffect(self):
        import qSlicerSegmentationsEditorEffectsPythonQt as qSlicerSegmentationsEditorEffects

        instance = qSlicerSegmentationsEditorEffects.qSlicerSegmentEditorScriptedEffect(None)
        effectFilename = os.path.join(os.path.dirname(__file__), self.__class__.__name__ + "Lib/SegmentEditorEffect.py")
        instance.setPythonSource(effectFilename.replace("\\", "/"))
        instance.self().register()


class SegmentEditorOneShotSegTest(ScriptedLoadableModuleTest):
    """The effect is registered and offered by the Segment Editor (its segmentation is tested with the module)."""

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
        self.assertIn("One-shot", segmentEditorWidget.availableEffectNames())
        segmentEditorWidget.setActiveEffectByName("One-shot")
        self.assertIsNotNone(segmentEditorWidget.activeEffect())
        self.delayDisplay("Test passed")
