"""The OneShotSeg module's jobs driven from its parameters: at most one job at a time, started, then finished or
abandoned (``DistillSegKernelLib.jobControl.JobControl``). Qt-free, so the module logic is a thin shell around it and
it is tested on a headless scene.

``parameters`` is the module's parameter node (or any object with the same attributes): ``atlasVolume``,
``atlasSegmentation``, ``unlabeledVolumes``, ``unlabeledFolder``, ``modelName``, ``iterations``,
``augmenterIterations``, ``spacingMm``, ``device``, ``alreadyAligned``, ``inputVolume``, ``outputSegmentation``,
``selectedModel``, ``segmentVolumes``, ``segmentSequence``, ``segmentFolder``, ``segmentOutputFolder``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from DistillSegKernelLib.jobControl import JobControl
from DistillSegKernelLib.jobProtocol import Job
from DistillSegKernelLib.jobRunner import removedIfStartFails
from DistillSegKernelLib.modelStore import ModelStore

from . import oneshotJobs, scanSegmentation


@dataclass
class JobOutcome:
    """What a finished job produced: a model (training), segmentation nodes (the first also as
    ``segmentationNode``; a segmentation sequence for a 4-D scan) or label map files (a folder of scans)."""

    kind: str  # "training" or "segmentation"
    modelName: str
    segmentationNode: object = None
    segmentationNodes: list = field(default_factory=list)
    files: list[str] = field(default_factory=list)


class OneShotJobControl(JobControl):
    """One OneShotSeg job at a time for a module (or a script), on one model store."""

    method = oneshotJobs.METHOD

    def canResume(self, modelName: str) -> bool:
        """True when ``modelName`` has an unfinished training with its checkpoint, inputs and options kept."""
        name = ModelStore.cleanName(modelName or "")
        folder = self.store.jobsFolder() / name
        return (self.store.checkpointPath(name).is_dir() and (folder / oneshotJobs.INPUTS_FILE).is_file()
                and (folder / oneshotJobs.OPTIONS_FILE).is_file())

    def startTraining(self, parameters, resume: bool = False, environment: dict | None = None) -> Job:
        """Write the inputs (or reuse them to resume) and start training ``parameters.modelName``.

        A new training never overwrites a model or an unfinished training: it takes the next free name and writes
        it back to ``parameters.modelName``.
        """
        name = ModelStore.cleanName(parameters.modelName)
        options = None  # a resumed training continues with the options it was started with
        if resume:
            inputs = oneshotJobs.TrainingInputs.load(self.store.jobsFolder() / name)
        else:
            name = self.store.uniqueName(name)
            parameters.modelName = name
            folder = parameters.unlabeledFolder
            files = oneshotJobs.engineImagesIn(folder) if folder else []
            inputs = oneshotJobs.prepareTraining(self.store, name, parameters.atlasVolume,
                                                 parameters.atlasSegmentation, parameters.unlabeledVolumes, files)
            options = oneshotJobs.TrainingOptions(
                iterations=parameters.iterations, augmenterIterations=parameters.augmenterIterations,
                spacingMm=parameters.spacingMm, device=parameters.device, prealign=not parameters.alreadyAligned)
        job = oneshotJobs.startTraining(self.store, name, inputs, options, resume, environment)

        def finish() -> JobOutcome:
            model = oneshotJobs.finishTraining(self.store, name, inputs)
            parameters.selectedModel = model.name
            return JobOutcome("training", model.name)

        # A failed or cancelled training keeps its inputs, options and checkpoint for Resume; a killed engine's
        # half-written staging folders go.
        return self.follow(job, finish, lambda: self.store.removeLeftovers(name))

    def startSegmentation(self, parameters, folder: str | Path, environment: dict | None = None,
                          what: str = "current", sequencesLogic=None) -> Job:
        """Segment ``what`` with ``parameters.selectedModel``, all scans in one engine request (one progress bar):

        - ``"current"``: ``inputVolume`` into ``outputSegmentation`` (a new one if None);
        - ``"checked"``: every scan of ``segmentVolumes``, each into a new segmentation;
        - ``"sequence"``: every time point of the 4-D scan ``segmentSequence`` (a sequence browser) plays, into a
          segmentation sequence played by the same browser;
        - ``"folder"``: every NIfTI/NRRD scan of ``segmentFolder`` into label map files in ``segmentOutputFolder``.

        Temporary files go to ``folder`` (removed when the job is finished or abandoned, or when it cannot start).
        ``sequencesLogic`` updates the browser's proxy nodes when a sequence is recorded."""
        with removedIfStartFails(folder):
            if not parameters.selectedModel:
                raise oneshotJobs.OneShotJobError("Select a model first (train one, or import one).")
            model = self.store.model(parameters.selectedModel)
            device = parameters.device
            if what == "current":
                segmentation = scanSegmentation.startSegmentation(model, parameters.inputVolume, folder, device,
                                                                  environment)
            elif what == "checked":
                scans = [(str(n), node) for n, node in enumerate(parameters.segmentVolumes) if node is not None]
                segmentation = scanSegmentation.startScanSegmentation(model, scans, folder, device, environment)
            elif what == "sequence":
                segmentation = scanSegmentation.startSequenceSegmentation(model, parameters.segmentSequence, folder,
                                                                          device, environment)
            elif what == "folder":
                if not parameters.segmentFolder:
                    raise oneshotJobs.OneShotJobError("Choose the folder of scans to segment.")
                segmentation = scanSegmentation.startFolderSegmentation(
                    model, parameters.segmentFolder, parameters.segmentOutputFolder, device, environment)
            else:
                raise ValueError(f"unknown segmentation target {what!r}")

        def finish() -> JobOutcome:
            if what == "folder":
                return JobOutcome("segmentation", model.name, files=list(segmentation.job.result.get("outputs", [])))
            if what == "sequence":
                nodes = [scanSegmentation.finishIntoSequence(segmentation, sequencesLogic)]
            elif what == "current":
                nodes = scanSegmentation.finishIntoSegmentations(segmentation, [parameters.outputSegmentation])
                parameters.outputSegmentation = nodes[0]
            else:
                nodes = scanSegmentation.finishIntoSegmentations(segmentation)
            return JobOutcome("segmentation", model.name, nodes[0], nodes)

        return self.follow(segmentation.job, finish, lambda: scanSegmentation.discard(segmentation))
