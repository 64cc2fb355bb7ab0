"""The "One-shot" Segment Editor effect: segment the source volume with a trained OneShotSeg model.

Apply writes the full-resolution source volume for the engine and runs ``distillseg oneshot segment``; the rest
(background job, Undo, replacing segments of the same structures) is the kernel's
``DistillSegKernelWidgets.modelSegmentationEffect``. The work itself
is ``OneShotSegLib``'s, shared with the OneShotSeg module.

Slicer finds the effect class by the file's name: ``SegmentEditorEffect``.
"""

import slicer
from slicer.i18n import tr as _

from DistillSegKernelWidgets.modelSegmentationEffect import ModelSegmentationEffect
from OneShotSegLib import oneshotJobs, scanSegmentation


class SegmentEditorEffect(ModelSegmentationEffect):
    """Segments the whole source volume into the current segmentation with the chosen OneShotSeg model."""

    sourceFile = __file__
    effectName = "One-shot"
    iconFile = "SegmentEditorEffect.png"
    method = oneshotJobs.METHOD
    moduleName = "OneShotSeg"
    parameterPrefix = ""
    tempPrefix = "OneShotSegEffect-"
    texts = {
        "title": _("One-shot"),
        "helpText": _("Segment the source volume with a model trained in the OneShotSeg module."),
        "modelToolTip": _("A model trained (or imported) in the OneShotSeg module."),
        "refreshToolTip": _("Read the model list (after training or importing a model) and the devices again."),
        "applyToolTip": _("Segment the source volume with the model (runs in the background)."),
        "noModel": _("No model yet: train or import one in the OneShotSeg module."),
        "selectFirst": _("Select a segmentation and a source volume first."),
    }

    def startSegmentation(self, model, sourceVolumeNode, folder, device):
        # The full-resolution source volume node, not the editor's resampled copy: the model runs on the scan's own
        # grid and the label map is imported from there into the segmentation's geometry.
        return scanSegmentation.startSegmentation(model, sourceVolumeNode, folder, device,
                                                  slicer.util.startupEnvironment())

    def finishSegmentation(self, segmentation, segmentationNode):
        scanSegmentation.finishSegmentation(segmentation, segmentationNode)

    def discardSegmentation(self, segmentation):
        scanSegmentation.discard(segmentation)
