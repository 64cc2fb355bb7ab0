"""The ``distillseg lap`` commands the module runs, and a chain of engine jobs followed as one job.

Every command is built with ``OneShotSegLib.engine.engineCommand`` and run by ``OneShotSegLib.jobRunner.EngineJob``
(progress events, ETA, device line, cancel of the whole process tree). Learning is a chain: ``lap learn`` (or
``lap train`` for a first model), then ``lap evaluate`` of the previous and the new version on the frames marked
for checking; ``JobChain`` runs them one after another behind the ``EngineJob`` interface the widget polls.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from OneShotSegLib.engine import defaultThreads, engineCommand
from OneShotSegLib.jobRunner import CANCELLED, FAILED, RUNNING, SUCCEEDED, EngineJob, JobProgress

METHOD = "lap"
STRATEGIES = ("ours", "finetune", "mib", "plop")
DEFAULT_WORKING_SIZE = (256, 320)  # the engine's default for a first model (height, width; multiples of 32)


@dataclass
class LearningOptions:
    """Engine options of ``lap train`` / ``lap learn``; None leaves the engine's default (``--help`` of the verb)."""

    iterations: int | None = None
    diffusionIterations: int | None = None
    strategy: str = "ours"
    device: str = "auto"
    precision: str = "auto"
    seed: int = 0
    threads: int = 0
    batchSize: int | None = None
    sampleSteps: int | None = None
    replay: int | None = None
    checkpointEvery: int | None = None
    workingSize: tuple[int, int] = DEFAULT_WORKING_SIZE  # first models only: later steps keep the model's size

    def arguments(self) -> list[str]:
        arguments = ["--device", self.device, "--precision", self.precision, "--seed", str(self.seed),
                     "--threads", str(self.threads or defaultThreads())]
        for option, value in (("--iterations", self.iterations), ("--diffusion-iterations", self.diffusionIterations),
                              ("--batch-size", self.batchSize), ("--sample-steps", self.sampleSteps),
                              ("--checkpoint-every", self.checkpointEvery)):
            if value is not None:
                arguments += [option, str(value)]
        return arguments


def trainCommand(dataFolder: Path, structures: list[str], outFolder: Path, options: LearningOptions,
                 python: str | None = None) -> list[str]:
    """``lap train``: a first model (step 0) of ``structures`` from the collected frames."""
    height, width = options.workingSize
    return engineCommand(["lap", "train", "--data", dataFolder, "--source", "structures",
                          "--classes", ",".join(structures), "--out", outFolder, "--size", height, width,
                          *options.arguments(), "--progress", "jsonl"], python)


def learnCommand(modelFolder: Path, dataFolder: Path, structures: list[str], outFolder: Path,
                 options: LearningOptions, python: str | None = None) -> list[str]:
    """``lap learn``: a new version of ``modelFolder`` that also knows ``structures``."""
    if options.strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy '{options.strategy}'")
    replay = ["--replay", str(options.replay)] if options.replay is not None else []
    return engineCommand(["lap", "learn", "--model", modelFolder, "--data", dataFolder, "--source", "structures",
                          "--new-classes", ",".join(structures), "--out", outFolder, "--strategy", options.strategy,
                          *replay, *options.arguments(), "--progress", "jsonl"], python)


def evaluateCommand(modelFolder: Path, dataFolder: Path, structures: list[str], reportPath: Path,
                    device: str = "auto", threads: int = 0, python: str | None = None) -> list[str]:
    """``lap evaluate``: IoU and Dice per structure of ``structures`` on the collected check frames."""
    return engineCommand(["lap", "evaluate", "--model", modelFolder, "--data", dataFolder, "--source", "structures",
                          "--classes", ",".join(structures), "--report", reportPath, "--device", device,
                          "--threads", str(threads or defaultThreads()), "--progress", "jsonl"], python)


def segmentCommand(modelFolder: Path, inputPath: Path, outputPath: Path, device: str = "auto",
                   python: str | None = None) -> list[str]:
    """``lap segment``: an index PNG per frame (value = the model's class value)."""
    return engineCommand(["lap", "segment", "--model", modelFolder, "--input", inputPath, "--output", outputPath,
                          "--device", device, "--threads", str(defaultThreads()), "--progress", "jsonl"], python)


def restoreCommand(modelFolder: Path, step: int, outFolder: Path, python: str | None = None) -> list[str]:
    """``lap restore``: the version after ``step`` written as a model of its own."""
    return engineCommand(["lap", "restore", "--model", modelFolder, "--step", str(step), "--out", outFolder,
                          "--progress", "jsonl"], python)


def demoDataCommand(outFolder: Path, patients: int, framesPerPatient: int, size: tuple[int, int], seed: int = 0,
                    python: str | None = None) -> list[str]:
    """``lap demo-data``: SYNTHETIC laparoscopic-looking frames in the DSAD layout (for self-tests and demos)."""
    return engineCommand(["lap", "demo-data", "--out", outFolder, "--patients", patients, "--frames-per-patient",
                          framesPerPatient, "--size", size[0], size[1], "--seed", seed, "--progress", "jsonl"],
                         python)


class JobChain:
    """Engine commands run one after another, followed like one ``EngineJob`` (``poll``, ``state``, ``progress``,
    ``cancel``, ``wait``, device and log). ``steps``: ``(title, command)`` pairs; a failed or cancelled step ends the
    chain; ``results`` holds each finished step's ``result`` event."""

    def __init__(self, steps: list[tuple[str, list[str]]], environment: dict | None = None, onEvent=None):
        if not steps:
            raise ValueError("a job chain needs at least one step")
        self.steps = steps
        self.environment = environment
        self.onEvent = onEvent
        self.index = -1
        self.job: EngineJob | None = None
        self.results: list[dict | None] = []
        self.state = RUNNING
        self.startTime: float | None = None
        self._finishedLines: deque[str] = deque(maxlen=2000)

    def start(self) -> "JobChain":
        self.startTime = time.monotonic()
        self._startNext()
        return self

    def _startNext(self) -> None:
        if self.job is not None:
            self._finishedLines.extend(self.job.logLines)
        self.index += 1
        title, command = self.steps[self.index]
        self._finishedLines.append(f"--- {title} ({self.index + 1} of {len(self.steps)})")
        self.job = EngineJob(command, self.environment, onEvent=self.onEvent).start()

    # The interface the widget and the tests use, delegated to the step that runs now.
    @property
    def running(self) -> bool:
        return self.state == RUNNING

    @property
    def stepTitle(self) -> str:
        return f"{self.steps[self.index][0]} ({self.index + 1} of {len(self.steps)})" if self.index >= 0 else ""

    @property
    def progress(self) -> JobProgress:
        return self.job.progress if self.job else JobProgress()

    @property
    def device(self):
        return self.job.device if self.job else None

    @property
    def deviceDescription(self):
        return self.job.deviceDescription if self.job else None

    @property
    def precision(self):
        return self.job.precision if self.job else None

    @property
    def errorMessage(self):
        return self.job.errorMessage if self.job else None

    @property
    def result(self):
        return self.results[-1] if self.results else None

    @property
    def cancelGraceSeconds(self) -> float:
        return self.job.cancelGraceSeconds if self.job else 0.0

    @property
    def logLines(self) -> list[str]:
        return list(self._finishedLines) + (list(self.job.logLines) if self.job else [])

    def elapsedSeconds(self) -> float:
        return 0.0 if self.startTime is None else time.monotonic() - self.startTime

    def poll(self) -> list[dict]:
        if self.state != RUNNING:
            return []
        events = self.job.poll()
        if self.job.state == SUCCEEDED:
            self.results.append(self.job.result)
            if self.index + 1 < len(self.steps):
                self._startNext()
            else:
                self.state = SUCCEEDED
        elif self.job.state in (FAILED, CANCELLED):
            self.state = self.job.state
        return events

    def cancel(self) -> None:
        if self.job is not None:
            self.job.cancel()

    def wait(self, timeoutSeconds: float | None = None, pollInterval: float = 0.05) -> str:
        deadline = None if timeoutSeconds is None else time.monotonic() + timeoutSeconds
        while self.state == RUNNING:
            self.poll()
            if deadline is not None and time.monotonic() >= deadline:
                break
            time.sleep(pollInterval)
        return self.state
