"""The "Laparoscopic" Segment Editor effect: segment the source frame with an IncrementalLap model.

A second effect rather than an option of the One-shot effect: it lists the other method's models, needs an RGB
frame rather than a 3D scan, and reads that frame differently. The Segment Editor hands effects only channel 0 of
an RGB source volume (its aligned source image), so the frame's full RGB array is read from the source volume
*node* (``IncrementalLapLib.frameVolumes.frameArray``). Apply runs ``distillseg lap segment`` in the background (a
QTimer follows it; Cancel stops it), then saves the state for Undo and writes the model's structures into the
current segmentation: segments of the same structures (same class value, or same name) are replaced and keep their
IDs, others are added. The work itself is ``IncrementalLapLib``'s, shared with the IncrementalLap module.

Slicer finds the effect class by the file's name: ``SegmentEditorLapEffect``.
"""

import os
import tempfile

import qt

import slicer
from slicer.i18n import tr as _

from SegmentEditorEffects import AbstractScriptedSegmentEditorEffect

from IncrementalLapLib import frameSegmentation, frameVolumes
from IncrementalLapLib.lapJobs import METHOD
from OneShotSegLib import dependencies, jobRunner
from OneShotSegLib.modelStore import ModelStore

DEVICES = ("auto", "cpu", "cuda")


class SegmentEditorLapEffect(AbstractScriptedSegmentEditorEffect):
    """Segments the source frame into the current segmentation with the chosen IncrementalLap model."""

    def __init__(self, scriptedEffect):
        scriptedEffect.name = "Laparoscopic"
        scriptedEffect.title = _("Laparoscopic")
        scriptedEffect.perSegment = False  # writes all of the model's structures at once
        scriptedEffect.requireSegments = False  # creates the segments it needs
        AbstractScriptedSegmentEditorEffect.__init__(self, scriptedEffect)
        self.store = ModelStore(METHOD)
        self.segmentation = None  # the running frameSegmentation.FrameSegmentationJob
        self.targetSegmentationNode = None
        self.timer = None

    def clone(self):
        import qSlicerSegmentationsEditorEffectsPythonQt as effects

        clonedEffect = effects.qSlicerSegmentEditorScriptedEffect(None)
        clonedEffect.setPythonSource(__file__.replace("\\", "/"))
        return clonedEffect

    def icon(self):
        iconPath = os.path.join(os.path.dirname(__file__), "SegmentEditorLapEffect.png")
        return qt.QIcon(iconPath) if os.path.exists(iconPath) else qt.QIcon()

    def helpText(self):
        return "<html>" + _(
            "Segment the source frame (an RGB laparoscopic frame) with a model of the IncrementalLap module.<p>"
            "Segments of the model's structures are added to the segmentation, or replaced if a segment of the same "
            "structure (or name) exists. Other segments are not changed. Undo restores the previous state.") + "</html>"

    # ------------------------------------------------------------------------------------------------ options
    def setupOptionsFrame(self):
        self.modelComboBox = qt.QComboBox()
        self.modelComboBox.toolTip = _("A model of the IncrementalLap module (imported, or learned there).")
        self.refreshButton = qt.QPushButton(_("Refresh"))
        self.refreshButton.toolTip = _("Read the model list again (after learning or importing a model).")
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
        self.applyButton.objectName = self.__class__.__name__ + "LapApply"
        self.applyButton.toolTip = _("Segment the source frame with the model (runs in the background).")
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
        self.scriptedEffect.setParameterDefault("LapModel", "")
        self.scriptedEffect.setParameterDefault("LapDevice", "auto")

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
        for comboBox, parameter in ((self.modelComboBox, "LapModel"), (self.deviceComboBox, "LapDevice")):
            wasBlocked = comboBox.blockSignals(True)
            index = comboBox.findText(self.scriptedEffect.parameter(parameter))
            comboBox.currentIndex = index if index >= 0 else 0
            comboBox.blockSignals(wasBlocked)
        running = self.segmentation is not None
        self.applyButton.enabled = not running and self.modelComboBox.count > 0
        self.cancelButton.enabled = running
        if self.modelComboBox.count == 0:
            self.statusLabel.text = _("No model yet: import or learn one in the IncrementalLap module.")

    def updateMRMLFromGUI(self):
        self.scriptedEffect.setParameter("LapModel", self.modelComboBox.currentText)
        self.scriptedEffect.setParameter("LapDevice", self.deviceComboBox.currentText)

    # ------------------------------------------------------------------------------------------------ apply
    def onApply(self):
        parameterSetNode = self.scriptedEffect.parameterSetNode()
        sourceVolumeNode = parameterSetNode.GetSourceVolumeNode()
        segmentationNode = parameterSetNode.GetSegmentationNode()
        if sourceVolumeNode is None or segmentationNode is None:
            slicer.util.errorDisplay(_("Select a segmentation and a source frame first."))
            return
        with slicer.util.tryWithErrorDisplay(_("Segmentation could not start."), waitCursor=True):
            frameVolumes.frameArray(sourceVolumeNode)  # refuse a grey or 3D source volume with a sentence
            if not dependencies.ensureDependencies("IncrementalLap"):
                return
            model = self.store.model(self.modelComboBox.currentText)
            folder = tempfile.mkdtemp(prefix="LapEffect-", dir=slicer.app.temporaryPath)
            # The source volume NODE, all three channels (not the editor's channel-0 copy), on its own grid.
            self.segmentation = frameSegmentation.startFrameSegmentation(
                model, [("0", sourceVolumeNode)], folder, self.deviceComboBox.currentText,
                slicer.util.startupEnvironment())
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
                frameSegmentation.finishIntoSegmentations(segmentation, [self.targetSegmentationNode])
                self.statusLabel.text = _("Done in {time}.").format(time=jobRunner.formatDuration(job.elapsedSeconds()))
        else:
            frameSegmentation.discard(segmentation)
            if job.state == jobRunner.CANCELLED:
                self.statusLabel.text = _("Cancelled.")
            else:
                self.statusLabel.text = _("Failed.")
                slicer.util.errorDisplay(job.errorMessage or _("The engine failed."), windowTitle=_("Laparoscopic"),
                                         detailedText="\n".join(job.logLines))
        self.updateGUIFromMRML()
