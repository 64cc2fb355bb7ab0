"""The IncrementalLap module's jobs driven from its parameters: segment frames, learn new structures (scores before
and after on the frames marked for checking), restore an earlier version. One job at a time
(``DistillSegKernelLib.jobControl.JobControl``); Qt-free, so the module logic is a thin shell around it and it is
tested on a headless scene.

``parameters`` is the module's parameter node (or any object with the same attributes): ``selectedModel``,
``inputFrame``, ``outputSegmentation``, ``selectedFrames``, ``sequenceBrowser``, ``trainingSegmentations``,
``trainingSequenceBrowser``, ``checkSegmentations``, ``newStructures``, ``newModelName``, ``iterations``,
``diffusionIterations``, ``device``.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from DistillSegKernelLib.engine import engineEnvironment
from DistillSegKernelLib.jobChain import JobChain
from DistillSegKernelLib.jobControl import JobControl
from DistillSegKernelLib.jobProtocol import Job
from DistillSegKernelLib.jobRunner import removedIfStartFails
from DistillSegKernelLib import sequenceBrowsers
from DistillSegKernelLib.modelStore import ModelInfo

from . import annotatedFrames, frameSegmentation, lapJobs
from .lapJobs import METHOD, LearningOptions

CHECK_BEFORE_REPORT = "check_before.json"  # written into the new model's folder (the engine ignores other files)
CHECK_AFTER_REPORT = "check_after.json"
_STEP_SUFFIX = " step "


class LapJobError(Exception):
    """A job that cannot start as asked, as one sentence for the user."""


@dataclass
class LapJobOutcome:
    """What a finished job produced: a model (learning, restore) or segmentation nodes / a segmentation sequence."""

    kind: str  # "learning", "restore" or "segmentation"
    modelName: str
    nodes: list = field(default_factory=list)


@dataclass
class ScoreRow:
    """One structure's IoU and Dice on the check frames before and after a learning step (None: not scored)."""

    structure: str
    iouBefore: float | None = None
    iouAfter: float | None = None
    diceBefore: float | None = None
    diceAfter: float | None = None

    def cells(self) -> list[str]:
        """The row as the scores table shows it: name, IoU before/after, Dice before/after ("-": not scored)."""
        values = (self.iouBefore, self.iouAfter, self.diceBefore, self.diceAfter)
        return [self.structure] + ["-" if value is None else f"{value:.3f}" for value in values]


def structureList(text: str) -> list[str]:
    return [name.strip() for name in (text or "").split(",") if name.strip()]


def versionRoot(name: str) -> str:
    """``"lap model step 2"`` -> ``"lap model"``: the name later versions are numbered from."""
    head, separator, tail = name.rpartition(_STEP_SUFFIX)
    return head if separator and tail.split(" ")[0].isdigit() else name


def modelSteps(model: ModelInfo) -> list[tuple[int, str]]:
    """``(step, description)`` of every version a model holds (restorable with ``lap restore``), oldest first."""
    added = {int(entry.get("step", -1)): entry.get("classes_added", []) for entry in model.manifest.get("history", [])}
    steps = sorted({int(v["step"]) for v in model.manifest.get("versions", [])} | {int(model.manifest.get("step", 0))})
    return [(step, f"step {step}: " + (", ".join(added.get(step, [])) or "?")) for step in steps]


def _readReport(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("per_class", {})
    except (OSError, ValueError, AttributeError):
        return {}


def checkScores(model: ModelInfo) -> list[ScoreRow]:
    """Scores on the check frames of the learning step that made ``model`` (empty if none were marked)."""
    before, after = _readReport(model.path / CHECK_BEFORE_REPORT), _readReport(model.path / CHECK_AFTER_REPORT)
    rows = []
    for name in list(after) + [n for n in before if n not in after]:
        old, new = before.get(name) or {}, after.get(name) or {}
        rows.append(ScoreRow(name, old.get("iou"), new.get("iou"), old.get("dice"), new.get("dice")))
    return rows


class LapJobControl(JobControl):
    """One IncrementalLap job at a time for a module (or a script), on one model store."""

    method = METHOD

    def _selectedModel(self, parameters) -> ModelInfo:
        if not parameters.selectedModel:
            raise LapJobError("Select a model first (import one, or learn a first model from annotated frames).")
        return self.store.model(parameters.selectedModel)

    # ------------------------------------------------------------------------------------------------ segment
    def startSegmentation(self, parameters, what: str, folder: str | Path, environment: dict | None = None,
                          sequencesLogic=None) -> Job:
        """Segment ``what``: ``"current"`` (``inputFrame`` into ``outputSegmentation``, new if None),
        ``"selected"`` (``selectedFrames``, one segmentation each) or ``"sequence"`` (every frame of
        ``sequenceBrowser`` into a segmentation sequence). Temporary files go to ``folder`` (removed when the job is
        finished or abandoned, or when it cannot start).

        A current frame that a sequence browser shows (its proxy node, found with ``sequencesLogic``) is the item
        on screen: its segmentation goes to that index of the browser's segmentation sequence, so segmenting
        frame 2 never overwrites frame 1's. A selection of frames cannot hold such a frame."""
        with removedIfStartFails(folder):
            model = self._selectedModel(parameters)
            device = parameters.device
            item = sequenceBrowsers.browserItem(parameters.inputFrame, sequencesLogic) if what == "current" else None
            if what == "sequence":
                if parameters.sequenceBrowser is None:
                    raise LapJobError("Select the sequence (its browser) whose frames to segment.")
                segmentation = frameSegmentation.startSequenceSegmentation(model, parameters.sequenceBrowser, folder,
                                                                           device, environment)
            elif item is not None:
                segmentation = frameSegmentation.startFrameSegmentation(
                    model, [(item.indexValue, item.dataNode)], folder, device, environment,
                    browserNode=item.browserNode)
            else:
                nodes = [parameters.inputFrame] if what == "current" else list(parameters.selectedFrames)
                nodes = [node for node in nodes if node is not None]
                if not nodes:
                    raise LapJobError("Select the frame(s) to segment.")
                for node in nodes:
                    if sequenceBrowsers.browserItem(node, sequencesLogic) is not None:
                        raise LapJobError(f"Frame '{node.GetName()}' is the one a sequence browser shows and changes "
                                          "with it: segment it with Segment current frame or Segment every frame.")
                segmentation = frameSegmentation.startFrameSegmentation(
                    model, [(str(i), node) for i, node in enumerate(nodes)], folder, device, environment)

        def finish() -> LapJobOutcome:
            if segmentation.browserNode is not None:
                nodes = [frameSegmentation.finishIntoSequence(segmentation, sequencesLogic)]
            elif what == "current":
                nodes = frameSegmentation.finishIntoSegmentations(segmentation, [parameters.outputSegmentation])
                parameters.outputSegmentation = nodes[0]
            else:
                nodes = frameSegmentation.finishIntoSegmentations(segmentation)
            return LapJobOutcome("segmentation", model.name, nodes)

        return self.follow(segmentation.job, finish, lambda: frameSegmentation.discard(segmentation))

    # ------------------------------------------------------------------------------------------------ learn
    def annotatedFrames(self, segmentations, browserNode=None, sequencesLogic=None) -> list:
        frames = annotatedFrames.annotatedFramesFromSegmentations(segmentations, sequencesLogic)
        if browserNode is not None:
            frames += annotatedFrames.annotatedFramesFromSequence(browserNode)
        return frames

    def structuresToLearn(self, parameters, frames) -> list[str]:
        """The names typed in ``newStructures``, else every annotated structure the model does not know yet."""
        known = set()
        if parameters.selectedModel:
            known = {entry.name.strip().lower() for entry in self._selectedModel(parameters).labels.entries}
        typed = structureList(parameters.newStructures)
        for name in typed:
            if name.lower() in known:
                raise LapJobError(f"The model already knows '{name}'; name only structures it does not know yet.")
        structures = typed or [n for n in annotatedFrames.structureNames(frames) if n.lower() not in known]
        if not structures:
            raise LapJobError("The annotated frames show no structure the model does not know yet: add a segment "
                              "for each new structure (named as it should be called) and paint it.")
        return structures

    def startLearning(self, parameters, options: LearningOptions | None = None, environment: dict | None = None,
                      sequencesLogic=None) -> Job:
        """Collect the annotated frames (new structures only) and start ``lap learn`` (``lap train`` when no
        model is selected), then ``lap evaluate`` of the previous and the new version on the check frames.
        ``sequencesLogic`` finds segmentations painted on a browser's proxy frame, which are refused."""
        options = options or LearningOptions(iterations=parameters.iterations,
                                             diffusionIterations=parameters.diffusionIterations,
                                             device=parameters.device)
        model = self._selectedModel(parameters) if parameters.selectedModel else None
        frames = self.annotatedFrames(parameters.trainingSegmentations, parameters.trainingSequenceBrowser,
                                      sequencesLogic)
        structures = self.structuresToLearn(parameters, frames)
        step = int(model.manifest.get("step", 0)) + 1 if model else 0
        defaultName = f"{versionRoot(model.name)}{_STEP_SUFFIX}{step}" if model else "lap model"
        name = self.store.uniqueName(parameters.newModelName.strip() or defaultName)
        work = self.store.jobsFolder() / name
        shutil.rmtree(work, ignore_errors=True)
        with removedIfStartFails(work):
            training = annotatedFrames.collectFrames(frames, work / "training", structures)
            annotatedFrames.requireEveryStructurePainted(training)
            steps = [("learning" if model else "training a first model",
                      lapJobs.learnCommand(model.path, training.folder, structures, self.store.modelPath(name),
                                           options) if model else
                      lapJobs.trainCommand(training.folder, structures, self.store.modelPath(name), options))]
            steps += self._checkSteps(parameters, model, structures, work / "check", name, options, sequencesLogic)
        self.store.ensureFolder()
        parameters.newModelName = name
        job = JobChain(steps, engineEnvironment(environment)).start()

        def finish() -> LapJobOutcome:
            shutil.rmtree(work, ignore_errors=True)
            parameters.selectedModel = name
            return LapJobOutcome("learning", name)

        def abandon() -> None:  # the collected frames and a cancelled run's checkpoint (no Resume is offered)
            shutil.rmtree(work, ignore_errors=True)
            shutil.rmtree(self.store.checkpointPath(name), ignore_errors=True)
            self.store.removeLeftovers(name)

        return self.follow(job, finish, abandon)

    def _checkSteps(self, parameters, model, structures, folder, name, options: LearningOptions,
                    sequencesLogic=None) -> list:
        """``lap evaluate`` of the previous and the new version on the check frames, for the structures each knows
        that the check frames annotate."""
        checks = [node for node in (parameters.checkSegmentations or []) if node is not None]
        if not checks:
            return []
        collected = annotatedFrames.collectFrames(
            annotatedFrames.annotatedFramesFromSegmentations(checks, sequencesLogic), folder)
        annotated = {s.lower(): s for s in collected.structures}
        newFolder = self.store.modelPath(name)
        known = [e.name for e in model.labels.entries] if model else []
        steps = []
        before = [annotated[n.lower()] for n in known if n.lower() in annotated]
        if model and before:
            steps.append(("scoring the previous version", lapJobs.evaluateCommand(
                model.path, folder, before, newFolder / CHECK_BEFORE_REPORT, options.device, options.threads)))
        after = [annotated[n.lower()] for n in known + structures if n.lower() in annotated]
        if not after:
            raise LapJobError("The frames marked for checking annotate none of the model's structures; paint some "
                              "of them (with the model's names) or unmark the frames.")
        steps.append(("scoring the new version", lapJobs.evaluateCommand(
            newFolder, folder, after, newFolder / CHECK_AFTER_REPORT, options.device, options.threads)))
        return steps

    # ------------------------------------------------------------------------------------------------ versions
    def startRestore(self, parameters, step: int, environment: dict | None = None) -> Job:
        """Write the selected model's version after ``step`` as a model of its own (``lap restore``)."""
        model = self._selectedModel(parameters)
        if step not in [s for s, _ in modelSteps(model)]:
            raise LapJobError(f"Model '{model.name}' has no version of step {step}.")
        name = self.store.uniqueName(f"{versionRoot(model.name)}{_STEP_SUFFIX}{step} restored")
        job = JobChain([("restoring", lapJobs.restoreCommand(model.path, step, self.store.modelPath(name)))],
                       engineEnvironment(environment)).start()

        def finish() -> LapJobOutcome:
            parameters.selectedModel = name
            return LapJobOutcome("restore", name)

        return self.follow(job, finish, lambda: self.store.removeLeftovers(name))
