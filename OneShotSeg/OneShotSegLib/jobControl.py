"""The OneShotSeg module's jobs driven from its parameters: at most one job at a time, started, then finished or
abandoned (``DistillSegKernelLib.jobControl.JobControl``). Qt-free, so the module logic is a thin shell around it and
it is tested on a headless scene.

``parameters`` is the module's parameter node (or any object with the same attributes): ``atlasVolume``,
``atlasSegmentation``, ``unlabeledVolumes``, ``unlabeledFolder``, ``modelName``, ``iterations``,
``augmenterIterations``, ``spacingMm``, ``device``, ``alreadyAligned``, ``inputVolume``, ``outputSegmentation``,
``selectedModel``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from DistillSegKernelLib.jobControl import JobControl
from DistillSegKernelLib.jobProtocol import Job
from DistillSegKernelLib.jobRunner import removedIfStartFails
from DistillSegKernelLib.modelStore import ModelStore

from . import oneshotJobs


@dataclass
class JobOutcome:
    """What a finished job produced: a model (training) or a segmentation node (segmentation)."""

    kind: str  # "training" or "segmentation"
    modelName: str
    segmentationNode: object = None


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

    def startSegmentation(self, parameters, folder: str | Path, environment: dict | None = None) -> Job:
        """Start segmenting ``parameters.inputVolume`` with ``parameters.selectedModel`` (temporary files in
        ``folder``, removed when the job is finished or abandoned, or when it cannot start)."""
        with removedIfStartFails(folder):
            model = self.store.model(parameters.selectedModel)
            segmentation = oneshotJobs.startSegmentation(model, parameters.inputVolume, folder, parameters.device,
                                                         environment)

        def finish() -> JobOutcome:
            node = oneshotJobs.finishSegmentation(segmentation, parameters.outputSegmentation)
            parameters.outputSegmentation = node
            return JobOutcome("segmentation", model.name, node)

        return self.follow(segmentation.job, finish, lambda: oneshotJobs.discardSegmentation(segmentation))
