"""IncrementalLap: segment laparoscopic frames, and teach the model new structures from a few annotated frames of
new patients without the old patients' frames.

Thin Slicer module: the widget connects the .ui to ``IncrementalLapLib`` (no Qt there: frames, sequences, annotated
frames, jobs) and to ``OneShotSegLib`` (job runner, model store, dependency check, label glue); segmenting, learning,
scoring and restoring run in child processes of the ``distillseg`` engine, followed by a QTimer, so Slicer stays
responsive.
"""

import os
import tempfile
from typing import Annotated

import qt
import vtk

import slicer
from slicer import vtkMRMLSegmentationNode, vtkMRMLSequenceBrowserNode, vtkMRMLVectorVolumeNode
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.parameterNodeWrapper import Choice, WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

from IncrementalLapLib import frameSequences, frameVolumes, lapJobControl, sampleFrames
from IncrementalLapLib.lapJobControl import LapJobControl
from IncrementalLapLib.lapJobs import METHOD, LearningOptions
from OneShotSegLib import dependencies, jobRunner
from OneShotSegLib.modelStore import ModelStore

JOB_POLL_INTERVAL_MS = 250
SCORE_COLUMNS = ("Structure", "IoU before", "IoU after", "Dice before", "Dice after")


class IncrementalLap(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("IncrementalLap")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Segmentation")]
        self.parent.dependencies = ["Segmentations", "Sequences", "OneShotSeg"]
        self.parent.contributors = ["OneShotSeg developers"]
        self.parent.helpText = _(
            "Segment laparoscopic frames (images, image sequences, video frames) with a model, and teach the model "
            "new anatomical structures from a few annotated frames of new patients; the old patients' frames are "
            "not needed, and every earlier version can be restored. See the "
            "<a href=\"https://github.com/OneShotSeg/SlicerOneShotSeg#incrementallap-in-slicer\">documentation</a>.")
        self.parent.acknowledgementText = _(
            "Method: Zhao et al., class-incremental laparoscopic segmentation by diffusion-driven distillation with "
            "cross-image contrastive learning (IJCARS 2025, doi 10.1007/s11548-025-03405-1). Built on PyTorch and "
            "MONAI.")


@parameterNodeWrapper
class IncrementalLapParameterNode:
    """Choices of the module, kept in the scene (saved with it)."""

    loadAsSequence: bool = False
    selectedModel: str = ""
    inputFrame: vtkMRMLVectorVolumeNode
    outputSegmentation: vtkMRMLSegmentationNode
    selectedFrames: list[vtkMRMLVectorVolumeNode]
    sequenceBrowser: vtkMRMLSequenceBrowserNode
    trainingSegmentations: list[vtkMRMLSegmentationNode]
    trainingSequenceBrowser: vtkMRMLSequenceBrowserNode
    checkSegmentations: list[vtkMRMLSegmentationNode]
    newStructures: str = ""
    newModelName: str = ""
    iterations: Annotated[int, WithinRange(1, 1000000)] = 300
    diffusionIterations: Annotated[int, WithinRange(0, 1000000)] = 600
    device: Annotated[str, Choice(["auto", "cpu", "cuda"])] = "auto"


class IncrementalLapWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._jobTimer = None
        self._jobTitle = ""

    # ------------------------------------------------------------------------------------------------ setup
    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/IncrementalLap.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.ui.deviceWarningLabel.hide()
        self.ui.scoresTableWidget.setColumnCount(len(SCORE_COLUMNS))
        self.ui.scoresTableWidget.setHorizontalHeaderLabels([_(c) for c in SCORE_COLUMNS])
        # The checkable combo boxes are not bound by the parameter node wrapper: these are copied both ways.
        self._checkableCombos = {"selectedFrames": self.ui.selectedFramesComboBox,
                                 "trainingSegmentations": self.ui.trainingSegmentationsComboBox,
                                 "checkSegmentations": self.ui.checkSegmentationsComboBox}

        self.logic = IncrementalLapLogic()
        self._jobTimer = qt.QTimer()
        self._jobTimer.setInterval(JOB_POLL_INTERVAL_MS)
        self._jobTimer.timeout.connect(self.onJobTimer)

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)

        self.ui.loadFramesButton.clicked.connect(self.onLoadFrames)
        self.ui.loadFolderButton.clicked.connect(self.onLoadFolder)
        self.ui.segmentFrameButton.clicked.connect(lambda: self.onSegment("current"))
        self.ui.segmentSelectedButton.clicked.connect(lambda: self.onSegment("selected"))
        self.ui.segmentSequenceButton.clicked.connect(lambda: self.onSegment("sequence"))
        self.ui.learnButton.clicked.connect(self.onLearn)
        self.ui.restoreButton.clicked.connect(self.onRestore)
        self.ui.cancelButton.clicked.connect(self.onCancel)
        self.ui.importModelButton.clicked.connect(self.onImportModel)
        self.ui.exportModelButton.clicked.connect(self.onExportModel)
        self.ui.deleteModelButton.clicked.connect(self.onDeleteModel)
        self.ui.showModelsFolderButton.clicked.connect(self.onShowModelsFolder)
        self.ui.modelListWidget.currentTextChanged.connect(self.onModelSelected)
        for name, combo in self._checkableCombos.items():
            combo.checkedNodesChanged.connect(lambda name=name, combo=combo: self.onCheckedNodesChanged(name, combo))

        self.initializeParameterNode()
        self.refreshModels()

    def cleanup(self) -> None:
        self.removeObservers()
        if self.logic and self.logic.busy:
            # Slicer is closing: stop the engine's process tree rather than leave an orphan job behind.
            self.logic.job.cancel()
            self.logic.job.wait(self.logic.job.cancelGraceSeconds + 2)
        if self._jobTimer:
            self._jobTimer.stop()

    def enter(self) -> None:
        self.initializeParameterNode()
        self.refreshModels()

    def exit(self) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateButtons)

    def onSceneStartClose(self, caller, event) -> None:
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())
        if not self._parameterNode.inputFrame:
            self._parameterNode.inputFrame = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLVectorVolumeNode")

    def setParameterNode(self, parameterNode) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateButtons)
        self._parameterNode = parameterNode
        if self._parameterNode:
            # Widgets with a "SlicerParameterName" property in the .ui are bound here.
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateButtons)
            self.showCheckedNodes()
            self.updateButtons()

    # ------------------------------------------------------------------------------------------------ GUI state
    def showCheckedNodes(self) -> None:
        for name, combo in self._checkableCombos.items():
            checked = {node.GetID() for node in getattr(self._parameterNode, name) if node}
            wasBlocked = combo.blockSignals(True)
            for index in range(combo.nodeCount()):
                node = combo.nodeFromIndex(index)
                combo.setCheckState(node, qt.Qt.Checked if node.GetID() in checked else qt.Qt.Unchecked)
            combo.blockSignals(wasBlocked)

    def onCheckedNodesChanged(self, name, combo) -> None:
        if self._parameterNode:
            setattr(self._parameterNode, name, list(combo.checkedNodes()))

    def updateButtons(self, caller=None, event=None) -> None:
        parameters = self._parameterNode
        if not parameters:
            return
        busy = self.logic.busy
        haveModel = bool(parameters.selectedModel)
        self.ui.segmentFrameButton.enabled = not busy and haveModel and bool(parameters.inputFrame)
        self.ui.segmentSelectedButton.enabled = not busy and haveModel and bool(parameters.selectedFrames)
        self.ui.segmentSequenceButton.enabled = not busy and haveModel and bool(parameters.sequenceBrowser)
        self.ui.learnButton.enabled = not busy and bool(parameters.trainingSegmentations
                                                        or parameters.trainingSequenceBrowser)
        self.ui.learnButton.text = _("Learn new structures") if haveModel else _("Learn a first model")
        self.ui.restoreButton.enabled = not busy and haveModel and self.ui.versionComboBox.count > 1
        self.ui.exportModelButton.enabled = haveModel
        self.ui.deleteModelButton.enabled = haveModel and not busy
        self.ui.cancelButton.enabled = busy

    def refreshModels(self) -> None:
        models = self.logic.store.models()
        listWidget = self.ui.modelListWidget
        wasBlocked = listWidget.blockSignals(True)
        listWidget.clear()
        for model in models:
            item = qt.QListWidgetItem(model.name)
            item.setToolTip(model.summary())
            listWidget.addItem(item)
        listWidget.blockSignals(wasBlocked)
        names = [m.name for m in models]
        selected = self._parameterNode.selectedModel if self._parameterNode else ""
        if selected not in names:
            selected = names[0] if names else ""
        if selected:
            listWidget.setCurrentRow(names.index(selected))
        self.onModelSelected(selected)

    def onModelSelected(self, name) -> None:
        if self._parameterNode and self._parameterNode.selectedModel != name:
            self._parameterNode.selectedModel = name
        models = {model.name: model for model in self.logic.store.models()}
        model = models.get(name)
        self.ui.modelInfoLabel.text = model.summary() if model else _("No model yet: import one, or learn a first "
                                                                      "model from annotated frames.")
        self.ui.versionComboBox.clear()
        for step, description in (lapJobControl.modelSteps(model) if model else []):
            self.ui.versionComboBox.addItem(description, step)
        if self.ui.versionComboBox.count:
            self.ui.versionComboBox.currentIndex = self.ui.versionComboBox.count - 1
        self.showScores(lapJobControl.checkScores(model) if model else [])
        self.updateButtons()

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
            if paths and dependencies.ensureDependencies("IncrementalLap"):  # frames are read with Pillow
                self.showFrame(self.logic.loadFrames(paths)[0])

    def onLoadFolder(self) -> None:
        folder = qt.QFileDialog.getExistingDirectory(slicer.util.mainWindow(), _("Load a folder of frames"))
        with slicer.util.tryWithErrorDisplay(_("The frames could not be loaded."), waitCursor=True):
            if not folder or not dependencies.ensureDependencies("IncrementalLap"):
                return
            if not self._parameterNode.loadAsSequence:
                self.showFrame(self.logic.loadFrames(folder)[0])
                return
            browserNode = self.logic.loadFolderAsSequence(folder)
            self._parameterNode.sequenceBrowser = browserNode
            slicer.modules.sequences.showSequenceBrowser(browserNode)
            slicer.util.setSliceViewerLayers(background=browserNode.GetProxyNode(browserNode.GetMasterSequenceNode()),
                                             fit=True)

    def showFrame(self, frameNode) -> None:
        self._parameterNode.inputFrame = frameNode
        slicer.util.setSliceViewerLayers(background=frameNode, fit=True)

    # ------------------------------------------------------------------------------------------------ jobs
    def onSegment(self, what) -> None:
        folder = tempfile.mkdtemp(prefix="IncrementalLap-", dir=slicer.app.temporaryPath)
        self.runJob(_("Segmentation"), _("Segmentation could not start."), lambda: self.logic.startSegmentation(
            self._parameterNode, what, folder, slicer.util.startupEnvironment(), slicer.modules.sequences.logic()))

    def onLearn(self) -> None:
        self.runJob(_("Learning"), _("Learning could not start."), lambda: self.logic.startLearning(
            self._parameterNode, environment=slicer.util.startupEnvironment()))

    def onRestore(self) -> None:
        step = int(self.ui.versionComboBox.currentData)
        self.runJob(_("Restore"), _("The version could not be restored."), lambda: self.logic.startRestore(
            self._parameterNode, step, slicer.util.startupEnvironment()))

    def runJob(self, title, failure, start) -> None:
        """Check the engine's packages (one dialog if some are missing), then start the job and follow it."""
        with slicer.util.tryWithErrorDisplay(failure, waitCursor=True):
            if dependencies.ensureDependencies("IncrementalLap"):
                self.startJob(start(), title)

    def startJob(self, job, title) -> None:
        self._jobTitle = title
        self.ui.logTextEdit.clear()
        self.ui.progressBar.value = 0
        self.ui.deviceLabel.text = _("{title}: starting the engine...").format(title=title)
        self.ui.deviceWarningLabel.hide()
        self.ui.statusLabel.text = ""
        self.ui.progressCollapsibleButton.collapsed = False
        self._jobTimer.start()
        self.updateButtons()

    def onCancel(self) -> None:
        if self.logic.busy:
            self.ui.statusLabel.text = _("Cancelling...")
            self.logic.job.cancel()

    def onJobTimer(self) -> None:
        job = self.logic.job
        for event in job.poll():
            self.showJobEvent(job, event)
        self.ui.progressBar.value = int(1000 * job.progress.fraction)
        if job.running:
            step = getattr(job, "stepTitle", "")
            status = jobRunner.describeProgress(job.progress) or _("Elapsed {time}").format(
                time=jobRunner.formatDuration(job.elapsedSeconds()))
            self.ui.statusLabel.text = f"{step}: {status}" if step else status
            return
        self._jobTimer.stop()
        self.finishJob(job)
        self.updateButtons()

    def showJobEvent(self, job, event) -> None:
        kind = event.get("event")
        if kind == "device":
            self.ui.deviceLabel.text = _("{title} running on {device} ({precision}).").format(
                title=self._jobTitle, device=job.deviceDescription, precision=job.precision)
            if job.device == "cpu" and self._parameterNode.device == "auto":
                self.ui.deviceWarningLabel.text = _(
                    "No usable GPU was found, so this runs on the CPU: expect learning to be much slower.")
                self.ui.deviceWarningLabel.show()
        if kind in ("log", "warning", "error", "device"):
            lines = list(job.logLines)
            if lines:
                self.ui.logTextEdit.appendPlainText(lines[-1])

    def finishJob(self, job) -> None:
        elapsed = jobRunner.formatDuration(job.elapsedSeconds())
        if job.state == jobRunner.SUCCEEDED:
            self.ui.progressBar.value = 1000
            with slicer.util.tryWithErrorDisplay(_("The result could not be loaded."), waitCursor=True):
                outcome = self.logic.finishJob()
                if outcome.kind == "segmentation":
                    message = _("Segmented {count} item(s) with '{model}' ({time}).").format(
                        count=len(outcome.nodes), model=outcome.modelName, time=elapsed)
                else:
                    message = _("Model '{name}' is ready ({time}).").format(name=outcome.modelName, time=elapsed)
                self.ui.statusLabel.text = message
            self.refreshModels()
        elif job.state == jobRunner.CANCELLED:
            self.ui.statusLabel.text = _("Cancelled after {time}.").format(time=elapsed)
            self.logic.abandonJob()
        else:
            self.ui.statusLabel.text = _("Failed after {time}.").format(time=elapsed)
            self.logic.abandonJob()
            slicer.util.errorDisplay(job.errorMessage or _("The engine failed."),
                                     windowTitle=_("IncrementalLap"), detailedText="\n".join(job.logLines))

    # ------------------------------------------------------------------------------------------------ models
    def onImportModel(self) -> None:
        path = qt.QFileDialog.getOpenFileName(slicer.util.mainWindow(), _("Import model"), "",
                                              _("Model bundle (*.zip)"))
        if not path:
            return
        with slicer.util.tryWithErrorDisplay(_("The model could not be imported."), waitCursor=True):
            model = self.logic.store.importZip(path)
            self._parameterNode.selectedModel = model.name
            self.refreshModels()

    def onExportModel(self) -> None:
        name = self._parameterNode.selectedModel
        path = qt.QFileDialog.getSaveFileName(slicer.util.mainWindow(), _("Export model"), f"{name}.zip",
                                              _("Model bundle (*.zip)"))
        if not path:
            return
        with slicer.util.tryWithErrorDisplay(_("The model could not be exported."), waitCursor=True):
            self.logic.store.exportZip(name, path)

    def onDeleteModel(self) -> None:
        name = self._parameterNode.selectedModel
        if not slicer.util.confirmYesNoDisplay(_("Delete model '{name}' from your model folder?").format(name=name)):
            return
        with slicer.util.tryWithErrorDisplay(_("The model could not be deleted.")):
            self.logic.store.delete(name)
            self._parameterNode.selectedModel = ""
            self.refreshModels()

    def onShowModelsFolder(self) -> None:
        qt.QDesktopServices.openUrl(qt.QUrl.fromLocalFile(str(self.logic.store.ensureFolder())))


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


class IncrementalLapTest(ScriptedLoadableModuleTest):
    """Generated frames, a tiny base model and one learning step through the engine on the CPU; segments checked."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_SegmentLearnSegment()

    def test_SegmentLearnSegment(self):
        plan = dependencies.checkDependencies()
        if plan.needsInstall or plan.problems:
            self.skipTest("the engine's Python packages are not installed: " + plan.confirmationText())
        self.delayDisplay("Generated frames, a tiny base model and one learning step (CPU)")
        workFolder = tempfile.mkdtemp(prefix="IncrementalLapTest-", dir=slicer.app.temporaryPath)
        store = ModelStore(METHOD, os.path.join(workFolder, "models"))
        result = sampleFrames.runStory(slicer.mrmlScene, store, workFolder,
                                       LearningOptions(**sampleFrames.SELF_TEST_OPTIONS), pump=slicer.app.processEvents)
        self.assertEqual(sampleFrames.storyProblems(result), [])
        self.delayDisplay("Test passed")
