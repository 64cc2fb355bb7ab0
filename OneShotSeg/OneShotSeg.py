"""OneShotSeg: train a segmentation model from one labelled scan and a few unlabelled scans, then segment with it.

Thin Slicer module: the widget connects the .ui to ``OneShotSegLib`` (no Qt there: jobs, model store, MRML glue,
dependency check); training and segmentation run in a child process of the ``distillseg`` engine, followed by a
QTimer, so Slicer stays responsive.
"""

import os
import tempfile
from typing import Annotated

import ctk
import qt
import vtk

import slicer
from slicer import vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode
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

from OneShotSegLib import dependencies, jobRunner, oneshotJobs, sampleCase, segmentLabels
from OneShotSegLib.jobControl import OneShotJobControl
from OneShotSegLib.modelStore import ModelStore

JOB_POLL_INTERVAL_MS = 250


class OneShotSeg(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("OneShotSeg")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Segmentation")]
        self.parent.dependencies = ["Segmentations"]
        self.parent.contributors = ["OneShotSeg developers"]
        self.parent.helpText = _(
            "Train a segmentation model from one labelled scan (the atlas) and a few unlabelled scans of the same "
            "anatomy, then segment any loaded scan with it. Training runs in the background and can be cancelled "
            "and resumed. See the <a href=\"https://github.com/OneShotSeg/SlicerOneShotSeg#readme\">documentation</a>.")
        self.parent.acknowledgementText = _(
            "Method: Zhou et al., Distillation Learning Guided by Image Reconstruction for One-Shot Medical Image "
            "Segmentation (arXiv 2408.03616). Built on PyTorch and MONAI.")


@parameterNodeWrapper
class OneShotSegParameterNode:
    """Choices of the module, kept in the scene (saved with it)."""

    atlasVolume: vtkMRMLScalarVolumeNode
    atlasSegmentation: vtkMRMLSegmentationNode
    unlabeledVolumes: list[vtkMRMLScalarVolumeNode]
    unlabeledFolder: str = ""
    modelName: str = "one-shot model"
    iterations: Annotated[int, WithinRange(1, 1000000)] = 500
    augmenterIterations: Annotated[int, WithinRange(1, 1000000)] = 100
    spacingMm: Annotated[float, WithinRange(0.0, 10.0)] = 0.0
    alreadyAligned: bool = False
    device: Annotated[str, Choice(["auto", "cpu", "cuda"])] = "auto"
    inputVolume: vtkMRMLScalarVolumeNode
    outputSegmentation: vtkMRMLSegmentationNode
    selectedModel: str = ""


class OneShotSegWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
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
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/OneShotSeg.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.ui.unlabeledFolderPathLineEdit.filters = ctk.ctkPathLineEdit.Dirs
        self.ui.deviceWarningLabel.hide()

        self.logic = OneShotSegLogic()
        self._jobTimer = qt.QTimer()
        self._jobTimer.setInterval(JOB_POLL_INTERVAL_MS)
        self._jobTimer.timeout.connect(self.onJobTimer)

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)

        self.ui.trainButton.clicked.connect(lambda: self.onTrain(resume=False))
        self.ui.resumeButton.clicked.connect(lambda: self.onTrain(resume=True))
        self.ui.cancelButton.clicked.connect(self.onCancel)
        self.ui.segmentButton.clicked.connect(self.onSegment)
        self.ui.importModelButton.clicked.connect(self.onImportModel)
        self.ui.exportModelButton.clicked.connect(self.onExportModel)
        self.ui.deleteModelButton.clicked.connect(self.onDeleteModel)
        self.ui.showModelsFolderButton.clicked.connect(self.onShowModelsFolder)
        self.ui.modelListWidget.currentTextChanged.connect(self.onModelSelected)
        self.ui.unlabeledVolumesComboBox.checkedNodesChanged.connect(self.onUnlabeledVolumesChanged)
        self.ui.unlabeledFolderPathLineEdit.currentPathChanged.connect(self.onUnlabeledFolderChanged)

        self.initializeParameterNode()
        self.refreshModels()

    def cleanup(self) -> None:
        self.removeObservers()
        if self.logic and self.logic.job and self.logic.job.running:
            # Slicer is closing: stop the engine's process tree rather than leave an orphan training behind.
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
        if not self._parameterNode.atlasVolume:
            self._parameterNode.atlasVolume = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")

    def setParameterNode(self, parameterNode) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateButtons)
        self._parameterNode = parameterNode
        if self._parameterNode:
            # Widgets with a "SlicerParameterName" property in the .ui are bound here.
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateButtons)
            self.showUnlabeledChoices()
            self.updateButtons()

    # ------------------------------------------------------------------------------------------------ GUI state
    def showUnlabeledChoices(self) -> None:
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

    def updateButtons(self, caller=None, event=None) -> None:
        parameters = self._parameterNode
        if not parameters:
            return
        busy = self.logic.busy
        haveScans = bool(parameters.unlabeledVolumes) or bool(parameters.unlabeledFolder)
        self.ui.trainButton.enabled = not busy and bool(parameters.atlasVolume and parameters.atlasSegmentation
                                                        and haveScans and parameters.modelName.strip())
        self.ui.resumeButton.enabled = not busy and self.logic.canResume(parameters.modelName)
        selected = bool(parameters.selectedModel)
        self.ui.segmentButton.enabled = not busy and selected and bool(parameters.inputVolume)
        self.ui.exportModelButton.enabled = selected
        self.ui.deleteModelButton.enabled = selected and not busy
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
        self.ui.modelInfoLabel.text = models[name].summary() if name in models else _("No trained model yet.")
        self.updateButtons()

    # ------------------------------------------------------------------------------------------------ jobs
    def onTrain(self, resume: bool) -> None:
        with slicer.util.tryWithErrorDisplay(_("Training could not start."), waitCursor=True):
            if not dependencies.ensureDependencies("OneShotSeg"):
                return
            job = self.logic.startTraining(self._parameterNode, resume, slicer.util.startupEnvironment())
            self.startJob(job, _("Training"))

    def onSegment(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Segmentation could not start."), waitCursor=True):
            if not dependencies.ensureDependencies("OneShotSeg"):
                return
            folder = tempfile.mkdtemp(prefix="OneShotSeg-", dir=slicer.app.temporaryPath)
            job = self.logic.startSegmentation(self._parameterNode, folder, slicer.util.startupEnvironment())
            self.startJob(job, _("Segmentation"))

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
        if self.logic.job and self.logic.job.running:
            self.ui.statusLabel.text = _("Cancelling...")
            self.logic.job.cancel()

    def onJobTimer(self) -> None:
        job = self.logic.job
        for event in job.poll():
            self.showJobEvent(job, event)
        progress = job.progress
        self.ui.progressBar.value = int(1000 * progress.fraction)
        if job.running:
            status = jobRunner.describeProgress(progress)
            self.ui.statusLabel.text = status or _("Elapsed {time}").format(
                time=jobRunner.formatDuration(job.elapsedSeconds()))
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
                    "No usable GPU was found, so this runs on the CPU: expect it to be much slower.")
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
                if outcome.kind == "training":
                    message = _("Model '{name}' is ready ({time}).").format(name=outcome.modelName, time=elapsed)
                else:
                    outcome.segmentationNode.CreateClosedSurfaceRepresentation()
                    message = _("Segmented '{volume}' into '{segmentation}' ({time}).").format(
                        volume=self._parameterNode.inputVolume.GetName(),
                        segmentation=outcome.segmentationNode.GetName(), time=elapsed)
                self.ui.statusLabel.text = message
            self.refreshModels()
        elif job.state == jobRunner.CANCELLED:
            self.ui.statusLabel.text = _("Cancelled after {time}.").format(time=elapsed)
            self.logic.abandonJob()
        else:
            self.ui.statusLabel.text = _("Failed after {time}.").format(time=elapsed)
            self.logic.abandonJob()
            slicer.util.errorDisplay(job.errorMessage or _("The engine failed."),
                                     windowTitle=_("OneShotSeg"), detailedText="\n".join(job.logLines))

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


class OneShotSegLogic(ScriptedLoadableModuleLogic, OneShotJobControl):
    """The module's jobs (``OneShotSegLib.jobControl``) plus its parameter node; usable from scripts."""

    def __init__(self, storeFolder=None) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        OneShotJobControl.__init__(self, storeFolder)

    def getParameterNode(self):
        return OneShotSegParameterNode(super().getParameterNode())


class OneShotSegTest(ScriptedLoadableModuleTest):
    """Trains a tiny model on generated scans through the engine on the CPU, segments, checks the overlap."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_TrainAndSegment()

    def test_TrainAndSegment(self):
        plan = dependencies.checkDependencies()
        if plan.needsInstall or plan.problems:
            self.skipTest("the engine's Python packages are not installed: " + plan.confirmationText())
        self.delayDisplay("Training a tiny model on generated scans (CPU)")
        workFolder = tempfile.mkdtemp(prefix="OneShotSegTest-", dir=slicer.app.temporaryPath)
        store = ModelStore(oneshotJobs.METHOD, os.path.join(workFolder, "models"))
        options = oneshotJobs.TrainingOptions(**sampleCase.SELF_TEST_OPTIONS)
        segmentationNode, overlap = sampleCase.trainAndSegment(slicer.mrmlScene, store, workFolder, options,
                                                               pump=slicer.app.processEvents)
        names = sorted(segmentationNode.GetSegmentation().GetSegment(segmentId).GetName()
                       for segmentId in segmentLabels.segmentIds(segmentationNode))
        self.assertEqual(names, sorted(entry.name for entry in sampleCase.LABELS.entries))
        for value, score in overlap.items():
            self.assertGreaterEqual(score, sampleCase.SELF_TEST_MIN_DICE, f"Dice of label {value}")
        self.delayDisplay(f"Test passed: Dice {overlap}")
