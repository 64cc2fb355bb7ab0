"""The "One-shot" Segment Editor effect: segment the source volume with a trained OneShotSeg model.

Apply writes the source volume for the engine, runs ``distillseg oneshot segment`` in the background (a QTimer
follows it; Cancel stops it), then saves the state for Undo and writes the model's structures into the current
segmentation: segments of the same structures (same model label, or same name) are replaced, others are added.
The work itself is ``OneShotSegLib``'s, shared with the OneShotSeg module.
"""

import os
import tempfile

import qt

import slicer
from slicer.i18n import tr as _

from SegmentEditorEffects import AbstractScriptedSegmentEditorEffect

from OneShotSegLib import dependencies, jobRunner, oneshotJobs
from OneShotSegLib.modelStore import ModelStore

DEVICES = ("auto", "cpu", "cuda")


class SegmentEditorEffect(AbstractScriptedSegmentEditorEffect):
    """Segments the whole source volume into the current segmentation with the chosen model."""

    def __init__(self, scriptedEffect):
        scriptedEffect.name = "One-shot"
        scriptedEffect.title = _("One-shot")
        scriptedEffect.perSegment = False  # writes all of the model's structures at once
        scriptedEffect.requireSegments = False  # creates the segments it needs
        AbstractScriptedSegmentEditorEffect.__init__(self, scriptedEffect)
        self.store = ModelStore(oneshotJobs.METHOD)
        self.segmentation = None  # the running oneshotJobs.SegmentationJob
        self.targetSegmentationNode = None
        self.timer = None

    def clone(self):
        import qSlicerSegmentationsEditorEffectsPythonQt as effects

        clonedEffect = effects.qSlicerSegmentEditorScriptedEffect(None)
        clonedEffect.setPythonSource(__file__.replace("\\", "/"))
        return clonedEffect

    def icon(self):
        iconPath = os.path.join(os.path.dirname(__file__), "SegmentEditorEffect.png")
        return qt.QIcon(iconPath) if os.path.exists(iconPath) else qt.QIcon()

    def helpText(self):
        return "<html>" + _(
            "Segment the source volume with a model trained in the OneShotSeg module.<p>"
            "Segments of the model's structures are added to the segmentation, or replaced if a segment of the same "
            "structure (or name) exists. Other segments are not changed. Undo restores the previous state.") + "</html>"

    # ------------------------------------------------------------------------------------------------ options
    def setupOptionsFrame(self):
        self.modelComboBox = qt.QComboBox()
        self.modelComboBox.toolTip = _("A model trained (or imported) in the OneShotSeg module.")
        self.refreshButton = qt.QPushButton(_("Refresh"))
        self.refreshButton.toolTip = _("Read the model list again (after training or importing a model).")
        modelRow = qt.QHBoxLayout()
        modelRow.addWidget(self.modelComboBox, 1)
        modelRow.addWidget(self.refreshButton)
        self.scriptedEffect.addLabeledOptionsWidget(_("Model:"), modelRow)

        self.deviceComboBox = qt.QComboBox()
        for device in DEVICES:
            self.deviceComboBox.addItem(device)
        self.deviceComboBox.toolTip = _("auto: a CUDA GPU if there is one, else the CPU.")
        self.scriptedEffect.addLabeledOptionsWidget(_("Device:"), self.deviceComboBox)

        self.applyButton = qt.QPushButton(_("Apply"))
        self.applyButton.objectName = self.__class__.__name__ + "Apply"
        self.applyButton.toolTip = _("Segment the source volume with the model (runs in the background).")
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

    def createCursor(self, widget):
        return slicer.util.mainWindow().cursor  # no effect-specific cursor: the effect does not paint

    def setMRMLDefaults(self):
        self.scriptedEffect.setParameterDefault("Model", "")
        self.scriptedEffect.setParameterDefault("Device", "auto")

    def refreshModels(self):
        names = [model.name for model in self.store.models()]
        wasBlocked = self.modelComboBox.blockSignals(True)
        self.modelComboBox.clear()
        for name in names:
            self.modelComboBox.addItem(name)
        self.modelComboBox.blockSignals(wasBlocked)
        if self.scriptedEffect.parameterSetNode() is not None:  # not yet while the options frame is being built
            self.updateGUIFromMRML()

    def updateGUIFromMRML(self):
        for comboBox, parameter in ((self.modelComboBox, "Model"), (self.deviceComboBox, "Device")):
            wasBlocked = comboBox.blockSignals(True)
            index = comboBox.findText(self.scriptedEffect.parameter(parameter))
            comboBox.currentIndex = index if index >= 0 else 0
            comboBox.blockSignals(wasBlocked)
        running = self.segmentation is not None
        self.applyButton.enabled = not running and self.modelComboBox.count > 0
        self.cancelButton.enabled = running
        if self.modelComboBox.count == 0:
            self.statusLabel.text = _("No model yet: train or import one in the OneShotSeg module.")

    def updateMRMLFromGUI(self):
        self.scriptedEffect.setParameter("Model", self.modelComboBox.currentText)
        self.scriptedEffect.setParameter("Device", self.deviceComboBox.currentText)

    # ------------------------------------------------------------------------------------------------ apply
    def onApply(self):
        parameterSetNode = self.scriptedEffect.parameterSetNode()
        sourceVolumeNode = parameterSetNode.GetSourceVolumeNode()
        segmentationNode = parameterSetNode.GetSegmentationNode()
        if sourceVolumeNode is None or segmentationNode is None:
            slicer.util.errorDisplay(_("Select a segmentation and a source volume first."))
            return
        with slicer.util.tryWithErrorDisplay(_("Segmentation could not start."), waitCursor=True):
            if not dependencies.ensureDependencies("OneShotSeg"):
                return
            model = self.store.model(self.modelComboBox.currentText)
            # The full-resolution source volume node, not the editor's resampled copy: the model runs on the scan's
            # own grid and the label map is imported from there into the segmentation's geometry.
            folder = tempfile.mkdtemp(prefix="OneShotSegEffect-", dir=slicer.app.temporaryPath)
            self.segmentation = oneshotJobs.startSegmentation(
                model, sourceVolumeNode, folder, self.deviceComboBox.currentText, slicer.util.startupEnvironment())
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
            self.statusLabel.text = (jobRunner.describeProgress(job.progress) or _("Segmenting")) + device
            return
        self.timer.stop()
        segmentation, self.segmentation = self.segmentation, None
        if job.state == jobRunner.SUCCEEDED:
            with slicer.util.tryWithErrorDisplay(_("The result could not be loaded."), waitCursor=True):
                self.scriptedEffect.saveStateForUndo()
                oneshotJobs.finishSegmentation(segmentation, self.targetSegmentationNode)
                self.statusLabel.text = _("Done in {time}.").format(time=jobRunner.formatDuration(job.elapsedSeconds()))
        elif job.state == jobRunner.CANCELLED:
            self.statusLabel.text = _("Cancelled.")
        else:
            self.statusLabel.text = _("Failed.")
            slicer.util.errorDisplay(job.errorMessage or _("The engine failed."), windowTitle=_("One-shot"),
                                     detailedText="\n".join(job.logLines))
        self.updateGUIFromMRML()
