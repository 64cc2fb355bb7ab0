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
import qt

import slicer
from slicer import vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode
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
            self.parent, _("OneShotSeg"), dependencies=["Segmentations", "DistillSegKernel"], helpText=_(
                "Train a segmentation model from one labelled scan (the atlas) and a few unlabelled scans of the same "
                "anatomy, then segment any loaded scan with it. Training runs in the background and can be cancelled "
                "and resumed. See the <a href=\"https://github.com/OneShotSeg/SlicerOneShotSeg#readme\">"
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


class OneShotSegWidget(EngineModuleWidget):
    """Train from an atlas and unlabelled scans; segment a scan with a model (shared parts: ``EngineModuleWidget``)."""

    def createLogic(self):
        return OneShotSegLogic()

    def setupModuleWidgets(self) -> None:
        self.ui.unlabeledFolderPathLineEdit.filters = ctk.ctkPathLineEdit.Dirs
        self.ui.trainButton.clicked.connect(lambda: self.onTrain(resume=False))
        self.ui.resumeButton.clicked.connect(lambda: self.onTrain(resume=True))
        self.ui.segmentButton.clicked.connect(self.onSegment)
        self.ui.unlabeledVolumesComboBox.checkedNodesChanged.connect(self.onUnlabeledVolumesChanged)
        self.ui.unlabeledFolderPathLineEdit.currentPathChanged.connect(self.onUnlabeledFolderChanged)

    def setDefaultInputs(self) -> None:
        if not self._parameterNode.atlasVolume:
            self._parameterNode.atlasVolume = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")

    # ------------------------------------------------------------------------------------------------ GUI state
    def showUnboundChoices(self) -> None:
        """The checkable combo box and the folder field are not bound automatically: copy the parameters in."""
        combo = self.ui.unlabeledVolumesComboBox
        wasBlocked = combo.blockSignals(True)
        checked = {node.GetID() for node in self._parameterNode.unlabeledVolumes if node}
        for index in range(combo.nodeCount()):
            node = combo.nodeFromIndex(index)
            combo.setCheckState(node, qt.Qt.Checked if node.GetID() in checked else qt.Qt.Unchecked)
        combo.blockSignals(wasBlocked)
        wasBlocked = self.ui.unlabeledFolderPathLineEdit.blockSignals(True)
        self.ui.unlabeledFolderPathLineEdit.currentPath = self._parameterNode.unlabeledFolder
        self.ui.unlabeledFolderPathLineEdit.blockSignals(wasBlocked)

    def onUnlabeledVolumesChanged(self) -> None:
        if self._parameterNode:
            self._parameterNode.unlabeledVolumes = list(self.ui.unlabeledVolumesComboBox.checkedNodes())

    def onUnlabeledFolderChanged(self, path) -> None:
        if self._parameterNode:
            self._parameterNode.unlabeledFolder = path

    def updateModuleButtons(self, parameters, busy: bool, haveModel: bool) -> None:
        haveScans = bool(parameters.unlabeledVolumes) or bool(parameters.unlabeledFolder)
        self.ui.trainButton.enabled = not busy and bool(parameters.atlasVolume and parameters.atlasSegmentation
                                                        and haveScans and parameters.modelName.strip())
        self.ui.resumeButton.enabled = not busy and self.logic.canResume(parameters.modelName)
        self.ui.segmentButton.enabled = not busy and haveModel and bool(parameters.inputVolume)

    def noModelText(self) -> str:
        return _("No trained model yet.")

    def showModel(self, model) -> None:
        pass  # the model information (structures, training) is all OneShotSeg shows of a model

    # ------------------------------------------------------------------------------------------------ jobs
    def onTrain(self, resume: bool) -> None:
        self.runJob(_("Training"), _("Training could not start."), lambda: self.logic.startTraining(
            self._parameterNode, resume, slicer.util.startupEnvironment()))

    def onSegment(self) -> None:
        self.runJob(_("Segmentation"), _("Segmentation could not start."), lambda: self.logic.startSegmentation(
            self._parameterNode, tempfile.mkdtemp(prefix="OneShotSeg-", dir=slicer.app.temporaryPath),
            slicer.util.startupEnvironment()))

    def finishedMessage(self, outcome, elapsed: str) -> str:
        if outcome.kind == "training":
            return _("Model '{name}' is ready ({time}).").format(name=outcome.modelName, time=elapsed)
        outcome.segmentationNode.CreateClosedSurfaceRepresentation()
        return _("Segmented '{volume}' into '{segmentation}' ({time}).").format(
            volume=self._parameterNode.inputVolume.GetName(), segmentation=outcome.segmentationNode.GetName(),
            time=elapsed)


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
