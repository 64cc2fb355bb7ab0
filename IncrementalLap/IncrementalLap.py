"""IncrementalLap: segment laparoscopic frames, and teach the model new structures from a few annotated frames of
new patients without the old patients' frames.

Thin Slicer module: the widget connects the .ui to ``IncrementalLapLib`` (no Qt there: frames, sequences, annotated
frames, jobs) and to the kernel module's ``DistillSegKernelLib`` (job runner, model store, dependency check, label
glue); segmenting, learning, scoring and restoring run in child processes of the ``distillseg`` engine (its ``lap``
verbs), followed by a QTimer, so Slicer stays responsive.
"""

import os
import tempfile
from typing import Annotated

import qt

import slicer
from slicer import vtkMRMLSegmentationNode, vtkMRMLSequenceBrowserNode, vtkMRMLVectorVolumeNode
from slicer.i18n import tr as _
from slicer.parameterNodeWrapper import Choice, WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import ScriptedLoadableModule, ScriptedLoadableModuleLogic

from DistillSegKernelLib import dependencies, devices
from DistillSegKernelWidgets import dependencyDialog
from DistillSegKernelWidgets.engineModuleTest import EngineModuleTest
from DistillSegKernelWidgets.engineModuleWidget import EngineModuleWidget
from DistillSegKernelWidgets.moduleDescription import describeModule
from IncrementalLapLib import frameSequences, frameVolumes, lapJobControl, sampleFrames
from IncrementalLapLib.lapJobControl import LapJobControl
from IncrementalLapLib.lapJobs import METHOD, LearningOptions


class IncrementalLap(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        describeModule(
            self.parent, _("IncrementalLap"), dependencies=["Segmentations", "Sequences", "DistillSegKernel"],
            helpText=_(
                "Segment laparoscopic frames (images, image sequences, video frames) with a model, and teach the "
                "model new anatomical structures from a few annotated frames of new patients; the old patients' "
                "frames are not needed, and every earlier version can be restored. See the "
                "<a href=\"https://github.com/OneShotSeg/SlicerOneShotSeg#incrementallap-in-slicer\">"
                "documentation</a>."),
            acknowledgementText=_(
                "Method: Zhao et al., class-incremental laparoscopic segmentation by diffusion-driven distillation "
                "with cross-image contrastive learning (IJCARS 2025, doi 10.1007/s11548-025-03405-1). Built on "
                "PyTorch and MONAI."))


@parameterNodeWrapper
class IncrementalLapParameterNode:
    """Choices of the module, kept in the scene (saved with it)."""

    # Frames and segmenting them: the model chosen in the list, the frame on screen, a selection, a sequence.
    loadAsSequence: bool = False
    selectedModel: str = ""
    inputFrame: vtkMRMLVectorVolumeNode
    outputSegmentation: vtkMRMLSegmentationNode
    selectedFrames: list[vtkMRMLVectorVolumeNode]
    sequenceBrowser: vtkMRMLSequenceBrowserNode
    # Learning: the new version's name and structures, the annotated frames, the check frames, the options.
    newModelName: str = ""
    newStructures: str = ""
    trainingSegmentations: list[vtkMRMLSegmentationNode]
    trainingSequenceBrowser: vtkMRMLSequenceBrowserNode
    checkSegmentations: list[vtkMRMLSegmentationNode]
    iterations: Annotated[int, WithinRange(1, 1000000)] = 300
    diffusionIterations: Annotated[int, WithinRange(0, 1000000)] = 600
    device: Annotated[str, Choice(list(devices.DEVICE_CHOICES))] = "auto"


class IncrementalLapWidget(EngineModuleWidget):
    """Segment frames, learn new structures, restore versions (shared parts: ``EngineModuleWidget``)."""

    def createLogic(self):
        return IncrementalLapLogic()

    def setupModuleWidgets(self) -> None:
        # Literals inside _(), so that lupdate finds them (the columns of ScoreRow.cells).
        columns = [_("Structure"), _("IoU before"), _("IoU after"), _("Dice before"), _("Dice after")]
        self.ui.scoresTableWidget.setColumnCount(len(columns))
        self.ui.scoresTableWidget.setHorizontalHeaderLabels(columns)
        self.bindCheckableCombos({"selectedFrames": self.ui.selectedFramesComboBox,
                                  "trainingSegmentations": self.ui.trainingSegmentationsComboBox,
                                  "checkSegmentations": self.ui.checkSegmentationsComboBox})
        self.ui.loadFramesButton.clicked.connect(self.onLoadFrames)
        self.ui.loadFolderButton.clicked.connect(self.onLoadFolder)
        self.ui.segmentFrameButton.clicked.connect(lambda: self.onSegment("current"))
        self.ui.segmentSelectedButton.clicked.connect(lambda: self.onSegment("selected"))
        self.ui.segmentSequenceButton.clicked.connect(lambda: self.onSegment("sequence"))
        self.ui.learnButton.clicked.connect(self.onLearn)
        self.ui.restoreButton.clicked.connect(self.onRestore)

    def setDefaultInputs(self) -> None:
        if not self._parameterNode.inputFrame:
            self._parameterNode.inputFrame = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLVectorVolumeNode")

    # ------------------------------------------------------------------------------------------------ GUI state
    def showUnboundChoices(self) -> None:
        pass  # every unbound choice is a checkable combo box (bindCheckableCombos)

    def updateModuleButtons(self, parameters, busy: bool, haveModel: bool) -> None:
        self.ui.segmentFrameButton.enabled = not busy and haveModel and bool(parameters.inputFrame)
        self.ui.segmentSelectedButton.enabled = not busy and haveModel and bool(parameters.selectedFrames)
        self.ui.segmentSequenceButton.enabled = not busy and haveModel and bool(parameters.sequenceBrowser)
        self.ui.learnButton.enabled = not busy and bool(parameters.trainingSegmentations
                                                        or parameters.trainingSequenceBrowser)
        self.ui.learnButton.text = _("Learn new structures") if haveModel else _("Learn a first model")
        self.ui.restoreButton.enabled = not busy and haveModel and self.ui.versionComboBox.count > 1

    def noModelText(self) -> str:
        return _("No model yet: import one, or learn a first model from annotated frames.")

    def showModel(self, model) -> None:
        """The versions the model holds (the latest chosen) and its scores on the check frames."""
        self.ui.versionComboBox.clear()
        for step, description in (lapJobControl.modelSteps(model) if model else []):
            self.ui.versionComboBox.addItem(description, step)
        if self.ui.versionComboBox.count:
            self.ui.versionComboBox.currentIndex = self.ui.versionComboBox.count - 1
        self.showScores(lapJobControl.checkScores(model) if model else [])

    def showScores(self, rows) -> None:
        table = self.ui.scoresTableWidget
        table.setRowCount(len(rows))
        for index, row in enumerate(rows):
            for column, text in enumerate(row.cells()):
                table.setItem(index, column, qt.QTableWidgetItem(text))
        table.resizeColumnsToContents()

    # ------------------------------------------------------------------------------------------------ frames
    def onLoadFrames(self) -> None:
        paths = qt.QFileDialog.getOpenFileNames(slicer.util.mainWindow(), _("Load frames"), "",
                                                _("Frames (*.png *.jpg *.jpeg *.tif *.tiff)"))
        with slicer.util.tryWithErrorDisplay(_("The frames could not be loaded."), waitCursor=True):
            if paths and self.ensureFrameReader():
                self.showFrame(self.logic.loadFrames(paths)[0])

    def onLoadFolder(self) -> None:
        folder = qt.QFileDialog.getExistingDirectory(slicer.util.mainWindow(), _("Load a folder of frames"))
        with slicer.util.tryWithErrorDisplay(_("The frames could not be loaded."), waitCursor=True):
            if not folder or not self.ensureFrameReader():
                return
            if not self._parameterNode.loadAsSequence:
                self.showFrame(self.logic.loadFrames(folder)[0])
                return
            browserNode = self.logic.loadFolderAsSequence(folder)
            self._parameterNode.sequenceBrowser = browserNode
            slicer.modules.sequences.showSequenceBrowser(browserNode)
            slicer.util.setSliceViewerLayers(background=browserNode.GetProxyNode(browserNode.GetMasterSequenceNode()),
                                             fit=True)

    def ensureFrameReader(self) -> bool:
        """Frames are read with Pillow, which Slicer ships: only that is checked here (PyTorch is for the jobs)."""
        return dependencies.ensureDependencies(self.moduleName, confirm=dependencyDialog.askToInstall,
                                               only=dependencies.FRAME_READER)

    def showFrame(self, frameNode) -> None:
        self._parameterNode.inputFrame = frameNode
        slicer.util.setSliceViewerLayers(background=frameNode, fit=True)

    # ------------------------------------------------------------------------------------------------ jobs
    def onSegment(self, what) -> None:
        self.runJob(_("Segmentation"), _("Segmentation could not start."), lambda: self.logic.startSegmentation(
            self._parameterNode, what, tempfile.mkdtemp(prefix="IncrementalLap-", dir=slicer.app.temporaryPath),
            slicer.util.startupEnvironment(), slicer.modules.sequences.logic()))

    def onLearn(self) -> None:
        self.runJob(_("Learning"), _("Learning could not start."), lambda: self.logic.startLearning(
            self._parameterNode, environment=slicer.util.startupEnvironment(),
            sequencesLogic=slicer.modules.sequences.logic()))

    def onRestore(self) -> None:
        step = int(self.ui.versionComboBox.currentData)
        self.runJob(_("Restore"), _("The version could not be restored."), lambda: self.logic.startRestore(
            self._parameterNode, step, slicer.util.startupEnvironment()))

    def finishedMessage(self, outcome, elapsed: str) -> str:
        if outcome.kind == "segmentation":
            return _("Segmented {count} item(s) with '{model}' ({time}).").format(
                count=len(outcome.nodes), model=outcome.modelName, time=elapsed)
        return _("Model '{name}' is ready ({time}).").format(name=outcome.modelName, time=elapsed)


class IncrementalLapLogic(ScriptedLoadableModuleLogic, LapJobControl):
    """The module's jobs (``IncrementalLapLib.lapJobControl``), frame loading and its parameter node; usable from
    scripts."""

    def __init__(self, storeFolder=None) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        LapJobControl.__init__(self, storeFolder)

    def getParameterNode(self):
        return IncrementalLapParameterNode(super().getParameterNode())

    def loadFrames(self, pathsOrFolder):
        """Frame files (a list), or every frame of a folder, as RGB vector volumes; returns the nodes."""
        if isinstance(pathsOrFolder, (str, os.PathLike)) and os.path.isdir(pathsOrFolder):
            return frameVolumes.loadFrameFolder(pathsOrFolder, slicer.mrmlScene)
        return [frameVolumes.loadFrame(path, slicer.mrmlScene) for path in pathsOrFolder]

    def loadFolderAsSequence(self, folder):
        """Every frame of a folder as one sequence; returns its browser node."""
        _, browserNode = frameSequences.loadFrameFolderAsSequence(folder, slicer.mrmlScene,
                                                                  slicer.modules.sequences.logic())
        return browserNode


class IncrementalLapTest(EngineModuleTest):
    """The module logic against the stand-in engine; then generated frames, a tiny base model and one learning step
    through the engine on the CPU, segments checked."""

    method = METHOD
    storyTitle = "Generated frames, a tiny base model and one learning step (CPU)"

    def runStandInStory(self, workFolder) -> list[str]:
        logic = IncrementalLapLogic(os.path.join(workFolder, "models"))
        return sampleFrames.standInStory(slicer.mrmlScene, logic, logic.getParameterNode(), workFolder,
                                         slicer.modules.sequences.logic(), pump=slicer.app.processEvents)

    def runStory(self, workFolder, store) -> str:
        result = sampleFrames.runStory(slicer.mrmlScene, store, workFolder,
                                       LearningOptions(**sampleFrames.SELF_TEST_OPTIONS), pump=slicer.app.processEvents,
                                       scored=False)
        self.assertEqual(sampleFrames.storyProblems(result), [])
        return ""
