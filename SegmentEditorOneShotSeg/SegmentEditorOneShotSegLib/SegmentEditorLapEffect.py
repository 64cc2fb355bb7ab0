"""The "Laparoscopic" Segment Editor effect: segment the source frame with an IncrementalLap model.

A second effect rather than an option of the One-shot effect: it lists the other method's models, needs an RGB
frame rather than a 3D scan, and reads that frame differently. The Segment Editor hands effects only channel 0 of
an RGB source volume (its aligned source image), so the frame's full RGB array is read from the source volume
*node* (``IncrementalLapLib.frameVolumes.frameArray``). Apply runs ``distillseg lap segment``; the rest (background
job, Undo, replacing segments of the same structures) is the kernel's
``DistillSegKernelWidgets.modelSegmentationEffect``. The work itself is ``IncrementalLapLib``'s, shared with the
IncrementalLap module.

Slicer finds the effect class by the file's name: ``SegmentEditorLapEffect``.
"""

import slicer
from slicer.i18n import tr as _

from DistillSegKernelWidgets.modelSegmentationEffect import ModelSegmentationEffect
from IncrementalLapLib import frameSegmentation
from IncrementalLapLib.lapJobs import METHOD


class SegmentEditorLapEffect(ModelSegmentationEffect):
    """Segments the source frame into the current segmentation with the chosen IncrementalLap model."""

    sourceFile = __file__
    effectName = "Laparoscopic"
    iconFile = "SegmentEditorLapEffect.png"
    method = METHOD
    moduleName = "IncrementalLap"
    parameterPrefix = "Lap"  # the One-shot effect's "Model" and "Device" are the other method's
    tempPrefix = "LapEffect-"
    texts = {
        "title": _("Laparoscopic"),
        "helpText": _("Segment the source frame (an RGB laparoscopic frame) with a model of the IncrementalLap "
                      "module."),
        "modelToolTip": _("A model of the IncrementalLap module (imported, or learned there)."),
        "refreshToolTip": _("Read the model list (after learning or importing a model) and the devices again."),
        "applyToolTip": _("Segment the source frame with the model (runs in the background)."),
        "noModel": _("No model yet: import or learn one in the IncrementalLap module."),
        "selectFirst": _("Select a segmentation and a source frame first."),
    }

    def startSegmentation(self, model, sourceVolumeNode, folder, device):
        # The source volume NODE, all three channels (not the editor's channel-0 copy), on its own grid; a grey
        # or 3D source volume is refused with a sentence.
        return frameSegmentation.startFrameSegmentation(model, [("0", sourceVolumeNode)], folder, device,
                                                        slicer.util.startupEnvironment())

    def finishSegmentation(self, segmentation, segmentationNode):
        frameSegmentation.finishIntoSegmentations(segmentation, [segmentationNode])

    def discardSegmentation(self, segmentation):
        frameSegmentation.discard(segmentation)
