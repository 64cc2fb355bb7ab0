"""The OneShotSeg module's jobs driven from its parameters: at most one job at a time, started, then finished or
abandoned. Qt-free, so the module logic is a thin shell around it and it is tested on a headless scene.

``parameters`` is the module's parameter node (or any object with the same attributes): ``atlasVolume``,
``atlasSegmentation``, ``unlabeledVolumes``, ``unlabeledFolder``, ``modelName``, ``iterations``,
``augmenterIterations``, ``spacingMm``, ``device``, ``alreadyAligned``, ``inputVolume``, ``outputSegmentation``,
``selectedModel``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from . import oneshotJobs
from .jobRunner import EngineJob, removedIfStartFails
from .modelStore import ModelStore


@dataclass
class JobOutcome:
    """What a finished job produced: a model (training) or a segmentation node (segmentation)."""

    kind: str  # "training" or "segmentation"
    modelName: str
    segmentationNode: object = None


class OneShotJobControl:
    """One OneShotSeg job at a time for a module (or a script), on one model store."""

    def __init__(self, storeFolder: str | Path | None = None):
        self.store = ModelStore(oneshotJobs.METHOD, storeFolder)
        self.job: EngineJob | None = None
        self._finish = None
        self._abandon = None

    @property
    def busy(self) -> bool:
        return self.job is not None and self.job.running

    def canResume(self, modelName: str) -> bool:
        """True when ``modelName`` has an unfinished training with its checkpoint, inputs and options kept."""
        name = ModelStore.cleanName(modelName or "")
        folder = oneshotJobs.jobsFolder(self.store) / name
        return (self.store.checkpointPath(name).is_dir() and (folder / oneshotJobs.INPUTS_FILE).is_file()
                and (folder / oneshotJobs.OPTIONS_FILE).is_file())

    def startTraining(self, parameters, resume: bool = False, environment: dict | None = None) -> EngineJob:
        """Write the inputs (or reuse them to resume) and start training ``parameters.modelName``.

        A new training never overwrites a model or an unfinished training: it takes the next free name and writes
        it back to ``parameters.modelName``.
        """
        name = ModelStore.cleanName(parameters.modelName)
        options = None  # a resumed training continues with the options it was started with
        if resume:
            inputs = oneshotJobs.TrainingInputs.load(oneshotJobs.jobsFolder(self.store) / name)
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
        self.job = oneshotJobs.startTraining(self.store, name, inputs, options, resume, environment)

        def finish() -> JobOutcome:
            model = oneshotJobs.finishTraining(self.store, name, inputs)
            parameters.selectedModel = model.name
            return JobOutcome("training", model.name)

        # A failed or cancelled training keeps its inputs, options and checkpoint for Resume; a killed engine's
        # half-written staging folders go.
        self._finish, self._abandon = finish, lambda: self.store.removeLeftovers(name)
        return self.job

    def startSegmentation(self, parameters, folder: str | Path, environment: dict | None = None) -> EngineJob:
        """Start segmenting ``parameters.inputVolume`` with ``parameters.selectedModel`` (temporary files in
        ``folder``, removed when the job is finished or abandoned, or when it cannot start)."""
        with removedIfStartFails(folder):
            model = self.store.model(parameters.selectedModel)
            segmentation = oneshotJobs.startSegmentation(model, parameters.inputVolume, folder, parameters.device,
                                                         environment)
        self.job = segmentation.job

        def finish() -> JobOutcome:
            node = oneshotJobs.finishSegmentation(segmentation, parameters.outputSegmentation)
            parameters.outputSegmentation = node
            return JobOutcome("segmentation", model.name, node)

        self._finish, self._abandon = finish, lambda: oneshotJobs.discardSegmentation(segmentation)
        return self.job

    def finishJob(self) -> JobOutcome:
        """Bring a successful job's result into the scene / model list."""
        finish, self._finish, self._abandon = self._finish, None, None
        return finish()

    def abandonJob(self) -> None:
        """Forget a failed or cancelled job (a training keeps its inputs, options and checkpoint for Resume, and
        loses what a killed engine left half-written; a segmentation's temporary files are removed)."""
        abandon, self._finish, self._abandon = self._abandon, None, None
        if abandon is not None:
            abandon()
