"""What the OneShotSeg and IncrementalLap module widgets share: a parameter node bound to the .ui, one engine job at
a time followed by a QTimer (progress bar, status, device line, log, Cancel), and the model list with its Import,
Export, Delete and Show-folder buttons.

Both modules' .ui files carry the widgets read here (``modelListWidget``, ``progressBar``, ``statusLabel``, ...; a
static test checks it). A module's widget subclasses ``EngineModuleWidget`` and supplies its logic (a
``ScriptedLoadableModuleLogic`` and a ``DistillSegKernelLib.jobControl.JobControl``: ``store``, ``job`` (a
``jobProtocol.Job``), ``busy``, ``finishJob``, ``abandonJob``, ``getParameterNode``) and the hooks below. Qt lives
here and in the module files only; the Libs stay Qt-free.
"""

import qt
import vtk

import slicer
from slicer.i18n import tr as _
from slicer.ScriptedLoadableModule import ScriptedLoadableModuleWidget
from slicer.util import VTKObservationMixin

from DistillSegKernelLib import dependencies, devices, jobProtocol, moduleReload

from . import dependencyDialog

JOB_POLL_INTERVAL_MS = 250


class EngineModuleWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """A module widget that runs engine jobs on its models. Subclasses implement the hooks marked so."""

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._jobTimer = None
        self._jobTitle = ""
        self._jobDevice = ""  # the device the job was asked for (the parameter node may be gone when it reports)
        self._checkableCombos = {}  # parameter name -> qMRMLCheckableNodeComboBox (``bindCheckableCombos``)

    # ------------------------------------------------------------------------------------------------ hooks
    def createLogic(self):
        """Hook: the module's logic."""
        raise NotImplementedError

    def setupModuleWidgets(self) -> None:
        """Hook: the module's own widgets and connections (``self.ui`` and ``self.logic`` exist)."""
        raise NotImplementedError

    def setDefaultInputs(self) -> None:
        """Hook: fill empty input choices of a fresh parameter node from the scene."""
        raise NotImplementedError

    def showUnboundChoices(self) -> None:
        """Hook: copy into the GUI the parameters the .ui bindings do not cover, other than the checkable combo
        boxes of ``bindCheckableCombos`` (path fields...)."""
        raise NotImplementedError

    def updateModuleButtons(self, parameters, busy: bool, haveModel: bool) -> None:
        """Hook: enable the module's own buttons the parameters and the running job allow."""
        raise NotImplementedError

    def noModelText(self) -> str:
        """Hook: what the model information says when no model is selected."""
        raise NotImplementedError

    def showModel(self, model) -> None:
        """Hook: show what the module shows of the selected model (a ``ModelInfo``, or None)."""
        raise NotImplementedError

    def finishedMessage(self, outcome, elapsed: str) -> str:
        """Hook: the status line for a job that succeeded (``outcome`` from the logic's ``finishJob``)."""
        raise NotImplementedError

    # ------------------------------------------------------------------------------------------------ setup
    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath(f"UI/{self.moduleName}.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.ui.deviceWarningLabel.hide()

        self.logic = self.createLogic()
        self._jobTimer = qt.QTimer()
        self._jobTimer.setInterval(JOB_POLL_INTERVAL_MS)
        self._jobTimer.timeout.connect(self.onJobTimer)

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)

        self.ui.cancelButton.clicked.connect(self.onCancel)
        self.ui.importModelButton.clicked.connect(self.onImportModel)
        self.ui.exportModelButton.clicked.connect(self.onExportModel)
        self.ui.deleteModelButton.clicked.connect(self.onDeleteModel)
        self.ui.showModelsFolderButton.clicked.connect(self.onShowModelsFolder)
        self.ui.modelListWidget.currentTextChanged.connect(self.onModelSelected)
        self.setupModuleWidgets()

        devices.startDeviceCheck(slicer.util.startupEnvironment())
        self.initializeParameterNode()
        self.refreshModels()

    def bindCheckableCombos(self, combos: dict) -> None:
        """Keep each ``{parameter name: qMRMLCheckableNodeComboBox}`` and its node-list parameter in step, both
        ways: the parameter node wrapper binds no checkable combo box."""
        self._checkableCombos = dict(combos)
        for name, combo in combos.items():
            combo.checkedNodesChanged.connect(lambda name=name, combo=combo: self.onCheckedNodesChanged(name, combo))

    def showCheckedNodes(self) -> None:
        """Check in each bound combo box the nodes its parameter lists (signals blocked: nothing is written back)."""
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

    def showDevices(self) -> None:
        """Show in the device list only what is offered (MPS once the engine's check passed; asked again while the
        check runs). Rows are hidden, not removed: the parameter node's binding maps rows to its choices, and
        fills the list anew (every row shown) each time it connects."""
        offered = devices.offeredDevices()
        comboBox = self.ui.deviceComboBox
        for row in range(comboBox.count):
            comboBox.view().setRowHidden(row, comboBox.itemText(row) not in offered)
        if devices.checking():
            qt.QTimer.singleShot(1000, self.showDevices)

    def cleanup(self) -> None:
        self.removeObservers()
        if self.logic and self.logic.busy:
            # Slicer is closing: stop the engine's process tree rather than leave an orphan job behind.
            self.logic.job.cancel()
            jobProtocol.waitFor(self.logic.job, self.logic.job.cancelGraceSeconds + 2)
        if self._jobTimer:
            self._jobTimer.stop()

    def onReload(self) -> None:
        """Developer Reload: the kernel's and this module's Lib packages first (Slicer reloads only the module file)."""
        moduleReload.reloadPackages(["DistillSegKernelLib", "DistillSegKernelWidgets", f"{self.moduleName}Lib"])
        ScriptedLoadableModuleWidget.onReload(self)

    def enter(self) -> None:
        self.initializeParameterNode()
        self.refreshModels()

    def exit(self) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateButtons)

    def onSceneStartClose(self, caller, event) -> None:
        self.logic.sceneClosing()  # the job's nodes are going: it is cancelled, and abandoned when it ends
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())
        self.setDefaultInputs()

    def setParameterNode(self, parameterNode) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateButtons)
        self._parameterNode = parameterNode
        if self._parameterNode:
            # Widgets with a "SlicerParameterName" property in the .ui are bound here.
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateButtons)
            self.showDevices()
            self.showCheckedNodes()
            self.showUnboundChoices()
            self.updateButtons()

    # ------------------------------------------------------------------------------------------------ buttons
    def updateButtons(self, caller=None, event=None) -> None:
        parameters = self._parameterNode
        if not parameters:
            return
        busy, haveModel = self.logic.busy, bool(parameters.selectedModel)
        self.updateModuleButtons(parameters, busy, haveModel)
        self.ui.exportModelButton.enabled = haveModel
        self.ui.deleteModelButton.enabled = haveModel and not busy
        self.ui.cancelButton.enabled = busy

    # ------------------------------------------------------------------------------------------------ models
    def onModelSelected(self, name) -> None:
        """Show the model chosen in the list (``name`` may be "")."""
        self.selectModel(name)
        model = next((model for model in self.logic.store.models() if model.name == name), None)
        self.ui.modelInfoLabel.text = model.summary() if model else self.noModelText()
        self.showModel(model)
        self.updateButtons()

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

    def selectModel(self, name) -> None:
        """Keep the parameter node's ``selectedModel`` on the model list's choice."""
        if self._parameterNode and self._parameterNode.selectedModel != name:
            self._parameterNode.selectedModel = name

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

    # ------------------------------------------------------------------------------------------------ jobs
    def runJob(self, title, failure, start) -> None:
        """Check the engine's packages (one dialog if some are missing), then ``start()`` the job and follow it;
        ``failure`` heads the error dialog when it cannot start."""
        with slicer.util.tryWithErrorDisplay(failure, waitCursor=True):
            if dependencies.ensureDependencies(self.moduleName, confirm=dependencyDialog.askToInstall):
                self.startJob(start(), title)

    def startJob(self, job, title) -> None:
        self._jobTitle = title
        self._jobDevice = self._parameterNode.device
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
            status = jobProtocol.describeProgress(job.progress) or _("Elapsed {time}").format(
                time=jobProtocol.formatDuration(job.elapsedSeconds()))
            # A job of several engine runs names the one running.
            self.ui.statusLabel.text = f"{job.stepTitle}: {status}" if job.stepTitle else status
            return
        self._jobTimer.stop()
        self.finishJob(job)
        self.updateButtons()

    def showJobEvent(self, job, event) -> None:
        kind = event.get("event")
        if kind == "device":
            self.ui.deviceLabel.text = _("{title} running on {device} ({precision}).").format(
                title=self._jobTitle, device=job.deviceDescription, precision=job.precision)
            if job.device == "cpu" and self._jobDevice == "auto":
                self.ui.deviceWarningLabel.text = _(
                    "No usable GPU was found, so this runs on the CPU: expect it to be much slower.")
                self.ui.deviceWarningLabel.show()
        if kind in ("log", "warning", "error", "device"):
            lines = list(job.logLines)
            if lines:
                self.ui.logTextEdit.appendPlainText(lines[-1])

    def finishJob(self, job) -> None:
        elapsed = jobProtocol.formatDuration(job.elapsedSeconds())
        if job.state == jobProtocol.SUCCEEDED and self.logic.finishable:
            self.ui.progressBar.value = 1000
            with slicer.util.tryWithErrorDisplay(_("The result could not be loaded."), waitCursor=True):
                self.ui.statusLabel.text = self.finishedMessage(self.logic.finishJob(), elapsed)
            self.refreshModels()
        elif job.state in (jobProtocol.SUCCEEDED, jobProtocol.CANCELLED):  # succeeded: but the scene was closed
            self.ui.statusLabel.text = _("Cancelled after {time}.").format(time=elapsed)
            self.logic.abandonJob()
        else:
            self.ui.statusLabel.text = _("Failed after {time}.").format(time=elapsed)
            self.logic.abandonJob()
            slicer.util.errorDisplay(job.errorMessage or _("The engine failed."),
                                     windowTitle=self.moduleName, detailedText="\n".join(job.logLines))
