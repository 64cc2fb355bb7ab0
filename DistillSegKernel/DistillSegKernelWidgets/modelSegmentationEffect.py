"""What the extension's two Segment Editor effects share: pick a model of one method, Apply runs the engine's
``segment`` on the source volume in the background (a QTimer follows it; Cancel stops it), then writes the model's
structures into the segmentation Apply was pressed on: segments of the same structures (same model label, or same
name) are replaced and keep their IDs, others are added; a failed or cancelled run leaves no files.

Undo: the Segment Editor saves the state of the segmentation it has selected *now* (``saveStateForUndo`` goes to
``vtkSlicerSegmentEditorLogic::SaveStateForUndo``), so the state is saved only when that is still the segmentation
the job writes into; otherwise the result is written without an Undo step, and the status line says so. When the
editor (or Slicer) closes, ``cleanup`` stops the timer and the running job and removes its files.

A subclass names the method and its texts and supplies three steps: ``startSegmentation`` (write the source for the
engine and start it), ``finishSegmentation`` (import the result) and ``discardSegmentation`` (remove the files). The
work itself is the module Libs' (``OneShotSegLib``, ``IncrementalLapLib``), shared with the modules.

Not an effect Slicer registers (the registering module lists the effect files); Slicer finds each effect class by
its file's name, so every subclass lives in a file of its own and sets ``sourceFile`` to that file. It lives in the
kernel's widget package, a real package, so the effect files (which Slicer executes as plain modules) can import it.
"""

import os
import tempfile

import qt

import slicer
from slicer.i18n import tr as _

from SegmentEditorEffects import AbstractScriptedSegmentEditorEffect

from DistillSegKernelLib import dependencies, devices, jobProtocol, jobRunner
from DistillSegKernelLib.modelStore import ModelStore

from . import dependencyDialog


class ModelSegmentationEffect(AbstractScriptedSegmentEditorEffect):
    """Segments the source volume into the current segmentation with the chosen model of ``method``."""

    sourceFile = __file__  # the subclass's file: clone() loads it, the icon sits beside it
    effectName = ""        # the effect's name in the Segment Editor (untranslated; texts["title"] is shown)
    iconFile = ""
    method = ""            # ModelStore method of the models listed
    moduleName = ""        # the module whose engine packages must be installed
    parameterPrefix = ""   # of the effect's parameters in the segment editor node: <prefix>Model, <prefix>Device
    tempPrefix = ""
    texts = {}             # title, helpText, modelToolTip, refreshToolTip, applyToolTip, noModel, selectFirst

    def __init__(self, scriptedEffect):
        scriptedEffect.name = self.effectName
        scriptedEffect.title = self.texts["title"]
        scriptedEffect.perSegment = False  # writes all of the model's structures at once
        scriptedEffect.requireSegments = False  # creates the segments it needs
        AbstractScriptedSegmentEditorEffect.__init__(self, scriptedEffect)
        self.store = ModelStore(self.method)
        self.segmentation = None  # the running job of the module Lib (it has a ``job``: jobRunner.EngineJob)
        self.targetSegmentationNode = None
        self.timer = None

    # ------------------------------------------------------------------------------------------------ method steps
    def startSegmentation(self, model, sourceVolumeNode, folder, device):
        """Write ``sourceVolumeNode`` into ``folder`` and start the engine; returns the Lib's running job."""
        raise NotImplementedError

    def finishSegmentation(self, segmentation, segmentationNode):
        """Import a finished job's labels into ``segmentationNode`` (and remove its files)."""
        raise NotImplementedError

    def discardSegmentation(self, segmentation):
        """Remove the files of a failed or cancelled job."""
        raise NotImplementedError

    # ------------------------------------------------------------------------------------------------ effect
    def clone(self):
        import qSlicerSegmentationsEditorEffectsPythonQt as effects

        clonedEffect = effects.qSlicerSegmentEditorScriptedEffect(None)
        clonedEffect.setPythonSource(self.sourceFile.replace("\\", "/"))
        return clonedEffect

    def icon(self):
        iconPath = os.path.join(os.path.dirname(self.sourceFile), self.iconFile)
        return qt.QIcon(iconPath) if os.path.exists(iconPath) else qt.QIcon()

    def helpText(self):
        return "<html>" + self.texts["helpText"] + "<p>" + _(
            "Segments of the model's structures are added to the segmentation, or replaced if a segment of the same "
            "structure (or name) exists. Other segments are not changed. Undo restores the previous state.") + \
            "<p>" + _("The masking settings (editable area, editable intensity range, modify other segments) do "
                      "not apply: the model's structures are written as the model segments them.") + "</html>"

    def cleanup(self):
        """The editor or Slicer is closing: stop following the job, stop the job, remove its files."""
        if self.timer is not None:
            self.timer.stop()
            self.timer.timeout.disconnect(self.onTimer)
            self.timer = None
        segmentation, self.segmentation = self.segmentation, None
        if segmentation is not None:
            segmentation.job.cancel()
            jobProtocol.waitFor(segmentation.job, segmentation.job.cancelGraceSeconds + 2)
            self.discardSegmentation(segmentation)

    # ------------------------------------------------------------------------------------------------ options
    def setupOptionsFrame(self):
        self.modelComboBox = qt.QComboBox()
        self.modelComboBox.toolTip = self.texts["modelToolTip"]
        self.refreshButton = qt.QPushButton(_("Refresh"))
        self.refreshButton.toolTip = self.texts["refreshToolTip"]
        modelRow = qt.QHBoxLayout()
        modelRow.addWidget(self.modelComboBox, 1)
        modelRow.addWidget(self.refreshButton)
        self.scriptedEffect.addLabeledOptionsWidget(_("Model:"), modelRow)

        self.deviceComboBox = qt.QComboBox()
        self.deviceComboBox.toolTip = _("auto: a CUDA GPU if there is one, else Apple MPS where it passes its check, "
                                        "else the CPU.")
        self.scriptedEffect.addLabeledOptionsWidget(_("Device:"), self.deviceComboBox)

        self.applyButton = qt.QPushButton(_("Apply"))
        self.applyButton.objectName = self.__class__.__name__ + "Apply"
        self.applyButton.toolTip = self.texts["applyToolTip"]
        self.cancelButton = qt.QPushButton(_("Cancel"))
        self.cancelButton.enabled = False
        buttons = qt.QHBoxLayout()
        buttons.addWidget(self.applyButton)
        buttons.addWidget(self.cancelButton)
        self.scriptedEffect.addOptionsWidget(buttons)

        self.progressBar = qt.QProgressBar()
        self.progressBar.maximum = 1000
        self.progressBar.textVisible = False
        self.statusLabel = qt.QLabel()
        self.statusLabel.wordWrap = True
        self.scriptedEffect.addOptionsWidget(self.progressBar)
        self.scriptedEffect.addOptionsWidget(self.statusLabel)

        self.timer = qt.QTimer()
        self.timer.setInterval(250)
        self.timer.timeout.connect(self.onTimer)
        self.refreshButton.clicked.connect(self.refreshModels)
        self.modelComboBox.currentTextChanged.connect(self.updateMRMLFromGUI)
        self.deviceComboBox.currentTextChanged.connect(self.updateMRMLFromGUI)
        self.applyButton.clicked.connect(self.onApply)
        self.cancelButton.clicked.connect(self.onCancel)
        self.refreshModels()

    def _parameterNames(self):
        return self.parameterPrefix + "Model", self.parameterPrefix + "Device"

    def setMRMLDefaults(self):
        modelParameter, deviceParameter = self._parameterNames()
        self.scriptedEffect.setParameterDefault(modelParameter, "")
        self.scriptedEffect.setParameterDefault(deviceParameter, "auto")

    def refreshModels(self):
        """Read the model list and the devices offered again (after training, or once MPS passed its check)."""
        devices.startDeviceCheck(slicer.util.startupEnvironment())
        for comboBox, items in ((self.modelComboBox, [model.name for model in self.store.models()]),
                                (self.deviceComboBox, devices.offeredDevices())):
            wasBlocked = comboBox.blockSignals(True)
            comboBox.clear()
            for item in items:
                comboBox.addItem(item)
            comboBox.blockSignals(wasBlocked)
        if self.scriptedEffect.parameterSetNode() is not None:  # not yet while the options frame is being built
            self.updateGUIFromMRML()

    def updateGUIFromMRML(self):
        for comboBox, parameter in zip((self.modelComboBox, self.deviceComboBox), self._parameterNames()):
            wasBlocked = comboBox.blockSignals(True)
            index = comboBox.findText(self.scriptedEffect.parameter(parameter))
            comboBox.currentIndex = index if index >= 0 else 0
            comboBox.blockSignals(wasBlocked)
        running = self.segmentation is not None
        self.applyButton.enabled = not running and self.modelComboBox.count > 0
        self.cancelButton.enabled = running
        if self.modelComboBox.count == 0:
            self.statusLabel.text = self.texts["noModel"]

    def updateMRMLFromGUI(self):
        modelParameter, deviceParameter = self._parameterNames()
        self.scriptedEffect.setParameter(modelParameter, self.modelComboBox.currentText)
        self.scriptedEffect.setParameter(deviceParameter, self.deviceComboBox.currentText)

    # ------------------------------------------------------------------------------------------------ apply
    def onApply(self):
        parameterSetNode = self.scriptedEffect.parameterSetNode()
        sourceVolumeNode = parameterSetNode.GetSourceVolumeNode()
        segmentationNode = parameterSetNode.GetSegmentationNode()
        if sourceVolumeNode is None or segmentationNode is None:
            slicer.util.errorDisplay(self.texts["selectFirst"])
            return
        with slicer.util.tryWithErrorDisplay(_("Segmentation could not start."), waitCursor=True):
            if not dependencies.ensureDependencies(self.moduleName, confirm=dependencyDialog.askToInstall):
                return
            model = self.store.model(self.modelComboBox.currentText)
            folder = tempfile.mkdtemp(prefix=self.tempPrefix, dir=slicer.app.temporaryPath)
            with jobRunner.removedIfStartFails(folder):
                self.segmentation = self.startSegmentation(model, sourceVolumeNode, folder,
                                                           self.deviceComboBox.currentText)
            self.targetSegmentationNode = segmentationNode
            self.statusLabel.text = _("Starting the engine...")
            self.progressBar.value = 0
            self.timer.start()
        self.updateGUIFromMRML()

    def onCancel(self):
        if self.segmentation is not None:
            self.statusLabel.text = _("Cancelling...")
            self.segmentation.job.cancel()

    def onTimer(self):
        job = self.segmentation.job
        job.poll()
        self.progressBar.value = int(1000 * job.progress.fraction)
        if job.running:
            device = _(" on {device}").format(device=job.deviceDescription) if job.deviceDescription else ""
            self.statusLabel.text = (jobProtocol.describeProgress(job.progress) or _("Segmenting")) + device
            return
        self.timer.stop()
        segmentation, self.segmentation = self.segmentation, None
        target, self.targetSegmentationNode = self.targetSegmentationNode, None
        if job.state == jobProtocol.SUCCEEDED and target.GetScene() is None:  # removed (or the scene closed)
            self.discardSegmentation(segmentation)
            self.statusLabel.text = _("The segmentation was removed while the model ran; nothing was written.")
        elif job.state == jobProtocol.SUCCEEDED:
            with slicer.util.tryWithErrorDisplay(_("The result could not be loaded."), waitCursor=True):
                done = _("Done in {time}.").format(time=jobProtocol.formatDuration(job.elapsedSeconds()))
                if self.scriptedEffect.parameterSetNode().GetSegmentationNode() is target:
                    self.scriptedEffect.saveStateForUndo()
                else:  # Undo would save (and later restore) the segmentation selected now, not this one
                    done += " " + _("Another segmentation was selected meanwhile: '{name}' was written without an "
                                    "Undo step.").format(name=target.GetName())
                self.finishSegmentation(segmentation, target)
                self.statusLabel.text = " ".join([done, *job.warnings])  # e.g. a restarted engine
        else:
            self.discardSegmentation(segmentation)
            if job.state == jobProtocol.CANCELLED:
                self.statusLabel.text = _("Cancelled.")
            else:
                self.statusLabel.text = _("Failed.")
                slicer.util.errorDisplay(job.errorMessage or _("The engine failed."), windowTitle=self.texts["title"],
                                         detailedText="\n".join(job.logLines))
        self.updateGUIFromMRML()
