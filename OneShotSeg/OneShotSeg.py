"""OneShotSeg: train a segmentation model from one labelled scan and a few unlabelled scans, then segment with it.

Thin Slicer module: the widget connects the .ui to ``OneShotSegLib`` (no Qt there: this method's jobs) and the
kernel module's ``DistillSegKernelLib`` (model store, MRML glue, dependency check); training and segmentation run in
a child process of the ``distillseg`` engine, followed by a QTimer, so Slicer stays responsive. What it shares with
the IncrementalLap widget (job progress, model list) is ``DistillSegKernelWidgets.engineModuleWidget``.
"""

import os
import tempfile
from typing import Annotated

import ctk

import slicer
from slicer import vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode, vtkMRMLSequenceBrowserNode
from slicer.i18n import tr as _
from slicer.parameterNodeWrapper import Choice, WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import ScriptedLoadableModule, ScriptedLoadableModuleLogic

from DistillSegKernelLib import devices, segmentLabels
from DistillSegKernelWidgets.engineModuleTest import EngineModuleTest
from DistillSegKernelWidgets.engineModuleWidget import EngineModuleWidget
from DistillSegKernelWidgets.moduleDescription import describeModule
from OneShotSegLib import oneshotJobs, sampleCase
from OneShotSegLib.jobControl import OneShotJobControl


class OneShotSeg(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        describeModule(
            self.parent, _("OneShotSeg"), dependencies=["Segmentations", "Sequences", "DistillSegKernel"], helpText=_(
                "Train a segmentation model from one labelled scan (the atlas) and a few unlabelled scans of the same "
                "anatomy, then segment any loaded scan with it, or many at once: the checked scans, every time point "
                "of a 4-D scan, a folder of scans. Training runs in the background and can be cancelled and resumed. "
                "See the <a href=\"https://github.com/OneShotSeg/SlicerOneShotSeg#readme\">"
                "documentation</a>."),
            acknowledgementText=_(
                "Method: Zhou et al., Distillation Learning Guided by Image Reconstruction for One-Shot Medical Image "
                "Segmentation (arXiv 2408.03616). Built on PyTorch and MONAI."))


@parameterNodeWrapper
class OneShotSegParameterNode:
    """Choices of the module, kept in the scene (saved with it)."""

    # Train: the atlas, the unlabelled scans, the new model's name and the training options.
    atlasVolume: vtkMRMLScalarVolumeNode
    atlasSegmentation: vtkMRMLSegmentationNode
    unlabeledVolumes: list[vtkMRMLScalarVolumeNode]
    unlabeledFolder: str = ""
    modelName: str = "one-shot model"
    iterations: Annotated[int, WithinRange(1, 1000000)] = 500
    augmenterIterations: Annotated[int, WithinRange(1, 1000000)] = 100
    spacingMm: Annotated[float, WithinRange(0.0, 10.0)] = 0.0
    alreadyAligned: bool = False
    device: Annotated[str, Choice(list(devices.DEVICE_CHOICES))] = "auto"
    # Segment: the model chosen in the list, the scan, and the segmentation to write (a new one if None).
    selectedModel: str = ""
    inputVolume: vtkMRMLScalarVolumeNode
    outputSegmentation: vtkMRMLSegmentationNode
    # Segment many: the checked scans, a 4-D scan (its sequence browser), or a folder of scans into label map files.
    segmentVolumes: list[vtkMRMLScalarVolumeNode]
    segmentSequence: vtkMRMLSequenceBrowserNode
    segmentFolder: str = ""
    segmentOutputFolder: str = ""


class OneShotSegWidget(EngineModuleWidget):
    """Train from an atlas and unlabelled scans; segment a scan with a model (shared parts: ``EngineModuleWidget``)."""

    def createLogic(self):
        return OneShotSegLogic()

    def setupModuleWidgets(self) -> None:
        # The path fields are not bound by the parameter node wrapper: these are copied both ways.
        self._pathFields = {"unlabeledFolder": self.ui.unlabeledFolderPathLineEdit,
                            "segmentFolder": self.ui.segmentFolderPathLineEdit,
                            "segmentOutputFolder": self.ui.segmentOutputFolderPathLineEdit}
        for name, field in self._pathFields.items():
            field.filters = ctk.ctkPathLineEdit.Dirs
            field.currentPathChanged.connect(lambda path, name=name: self.onPathChanged(name, path))
        self.bindCheckableCombos({"unlabeledVolumes": self.ui.unlabeledVolumesComboBox,
                                  "segmentVolumes": self.ui.segmentVolumesComboBox})
        self.ui.trainButton.clicked.connect(lambda: self.onTrain(resume=False))
        self.ui.resumeButton.clicked.connect(lambda: self.onTrain(resume=True))
        self.ui.segmentButton.clicked.connect(lambda: self.onSegment("current"))
        self.ui.segmentCheckedButton.clicked.connect(lambda: self.onSegment("checked"))
        self.ui.segmentSequenceButton.clicked.connect(lambda: self.onSegment("sequence"))
        self.ui.segmentFolderButton.clicked.connect(lambda: self.onSegment("folder"))

    def setDefaultInputs(self) -> None:
        if not self._parameterNode.atlasVolume:
            self._parameterNode.atlasVolume = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")

    # ------------------------------------------------------------------------------------------------ GUI state
    def showUnboundChoices(self) -> None:
        for name, field in self._pathFields.items():
            wasBlocked = field.blockSignals(True)
            field.currentPath = getattr(self._parameterNode, name)
            field.blockSignals(wasBlocked)

    def onPathChanged(self, name, path) -> None:
        if self._parameterNode:
            setattr(self._parameterNode, name, path)

    def updateModuleButtons(self, parameters, busy: bool, haveModel: bool) -> None:
        haveScans = bool(parameters.unlabeledVolumes) or bool(parameters.unlabeledFolder)
        self.ui.trainButton.enabled = not busy and bool(parameters.atlasVolume and parameters.atlasSegmentation
                                                        and haveScans and parameters.modelName.strip())
        self.ui.resumeButton.enabled = not busy and self.logic.canResume(parameters.modelName)
        self.ui.segmentButton.enabled = not busy and haveModel and bool(parameters.inputVolume)
        self.ui.segmentCheckedButton.enabled = not busy and haveModel and bool(parameters.segmentVolumes)
        self.ui.segmentSequenceButton.enabled = not busy and haveModel and bool(parameters.segmentSequence)
        self.ui.segmentFolderButton.enabled = not busy and haveModel and bool(parameters.segmentFolder
                                                                               and parameters.segmentOutputFolder)

    def noModelText(self) -> str:
        return _("No trained model yet.")

    def showModel(self, model) -> None:
        pass  # the model information (structures, training) is all OneShotSeg shows of a model

    # ------------------------------------------------------------------------------------------------ jobs
    def onTrain(self, resume: bool) -> None:
        self.runJob(_("Training"), _("Training could not start."), lambda: self.logic.startTraining(
            self._parameterNode, resume, slicer.util.startupEnvironment()))

    def onSegment(self, what) -> None:
        self.runJob(_("Segmentation"), _("Segmentation could not start."), lambda: self.logic.startSegmentation(
            self._parameterNode, tempfile.mkdtemp(prefix="OneShotSeg-", dir=slicer.app.temporaryPath),
            slicer.util.startupEnvironment(), what, slicer.modules.sequences.logic()))

    def finishedMessage(self, outcome, elapsed: str) -> str:
        if outcome.kind == "training":
            return _("Model '{name}' is ready ({time}).").format(name=outcome.modelName, time=elapsed)
        if outcome.files:
            return _("Wrote {count} segmentation file(s) to '{folder}' ({time}).").format(
                count=len(outcome.files), folder=self._parameterNode.segmentOutputFolder, time=elapsed)
        for node in outcome.segmentationNodes:
            if node.IsA("vtkMRMLSegmentationNode"):  # a segmentation sequence shows its items as they play
                node.CreateClosedSurfaceRepresentation()
        if len(outcome.segmentationNodes) > 1:
            return _("Segmented {count} scans ({time}).").format(count=len(outcome.segmentationNodes), time=elapsed)
        return _("Segmented into '{segmentation}' ({time}).").format(
            segmentation=outcome.segmentationNode.GetName(), time=elapsed)


class OneShotSegLogic(ScriptedLoadableModuleLogic, OneShotJobControl):
    """The module's jobs (``OneShotSegLib.jobControl``) plus its parameter node; usable from scripts."""

    def __init__(self, storeFolder=None) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        OneShotJobControl.__init__(self, storeFolder)

    def getParameterNode(self):
        return OneShotSegParameterNode(super().getParameterNode())


class OneShotSegTest(EngineModuleTest):
    """The module logic against the stand-in engine; then a tiny model trained on generated scans through the
    engine on the CPU, a scan segmented, the overlap checked (``ONESHOTSEG_LONG_SELF_TEST=1``: the long story)."""

    method = oneshotJobs.METHOD
    storyTitle = "Training a tiny model on generated scans (CPU)"

    def runStandInStory(self, workFolder) -> list[str]:
        logic = OneShotSegLogic(os.path.join(workFolder, "models"))
        return sampleCase.standInStory(slicer.mrmlScene, logic, logic.getParameterNode(), workFolder,
                                       pump=slicer.app.processEvents)

    def runStory(self, workFolder, store) -> str:
        story = sampleCase.selfTestStory()
        segmentationNode, overlap = sampleCase.trainAndSegment(slicer.mrmlScene, store, workFolder, story,
                                                               pump=slicer.app.processEvents)
        names = sorted(segmentationNode.GetSegmentation().GetSegment(segmentId).GetName()
                       for segmentId in segmentLabels.segmentIds(segmentationNode))
        self.assertEqual(names, sorted(entry.name for entry in sampleCase.LABELS.entries))
        for value, score in overlap.items():
            self.assertGreaterEqual(score, story.minimumDice, f"Dice of label {value}")
        return f"Dice {overlap}"
