"""Engine commands run one after another and followed as one job (a ``jobProtocol.Job``), optionally after a
preparation that runs here, in short slices, before the first command starts.

IncrementalLap's learning is such a chain: ``lap learn`` (or ``lap train`` for a first model), then ``lap evaluate``
of the previous and the new version on the frames marked for checking. A failed or cancelled step ends the chain.
Segmenting the frames of a long video is a one-command chain with a preparation: writing the frames for the engine
would freeze Slicer if done at once, so each ``poll()`` (a QTimer tick in Slicer) writes frames for at most
``sliceSeconds`` and returns; its step is a request to the engine worker (``startStep``), not a new process.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator

from .jobProtocol import CANCELLED, FAILED, RUNNING, SUCCEEDED, Job, JobProgress
from .jobRunner import EngineJob

PREPARATION_SLICE_SECONDS = 0.1  # the longest one poll() prepares: Slicer's GUI stays responsive


def _ofRunningStep(name: str, before=None) -> property:
    """A read-only attribute of the chain that is the running step's ``name`` (``before`` until a step starts)."""
    return property(lambda chain: getattr(chain.job, name) if chain.job is not None else before)


class JobChain:
    """``steps``: ``(title, command)`` pairs run in order, each started as ``startStep(command, environment,
    onEvent)`` (default: an ``EngineJob``, a child process; ``engineWorker.startRequest`` sends the step's
    ``distillseg`` arguments to the warm engine worker instead); ``results`` holds each finished step's ``result`` event. What the widget reads (progress, device,
    error, cancel grace) is the running step's; ``logLines`` covers every step so far.

    ``preparation`` (optional): ``(title, work)`` where ``work`` yields ``(done, total)`` after each piece of work
    (e.g. one frame written); it runs before the first step, during ``poll()`` calls, and is reported as a
    progress stage named ``title``. An exception it raises fails the chain with its message.
    """

    def __init__(self, steps: list[tuple[str, list[str]]], environment: dict | None = None, onEvent=None,
                 preparation: tuple[str, Iterator[tuple[int, int]]] | None = None,
                 sliceSeconds: float = PREPARATION_SLICE_SECONDS,
                 startStep: Callable[[list[str], dict | None, Callable | None], Job] | None = None):
        if not steps:
            raise ValueError("a job chain needs at least one step")
        self.steps = steps
        self.environment = environment
        self.onEvent = onEvent
        self.preparation = preparation
        self.sliceSeconds = sliceSeconds
        self.startStep = startStep or (lambda command, environment, onEvent:
                                       EngineJob(command, environment, onEvent=onEvent).start())
        self.index = -1
        self.job: Job | None = None
        self.results: list[dict | None] = []
        self.state = RUNNING
        self.startTime: float | None = None
        self.errorMessage: str | None = None
        self._preparationProgress = JobProgress(preparation[0] if preparation else "")
        self._finishedLines: deque[str] = deque(maxlen=2000)
        self._finishedWarnings: list[str] = []

    def start(self) -> "JobChain":
        self.startTime = time.monotonic()
        if self.preparation is None:
            self._startNext()
        return self

    def _startNext(self) -> None:
        if self.job is not None:
            self._finishedLines.extend(self.job.logLines)
            self._finishedWarnings.extend(self.job.warnings)
        self.index += 1
        title, command = self.steps[self.index]
        self._finishedLines.append(f"--- {title} ({self.index + 1} of {len(self.steps)})")
        self.job = self.startStep(command, self.environment, self.onEvent)

    def _prepare(self) -> None:
        """Run the preparation for at most ``sliceSeconds``; start the first step once it is done."""
        title, work = self.preparation
        deadline = time.monotonic() + self.sliceSeconds
        try:
            for done, total in work:
                self._preparationProgress = JobProgress(title, done, total, elapsedSeconds=self.elapsedSeconds())
                if time.monotonic() >= deadline:
                    return
        except Exception as error:  # a frame that cannot be written: the chain fails with the sentence
            self.state, self.errorMessage = FAILED, str(error)
            self._finishedLines.append(f"Error: {error}")
            return
        self._startNext()

    @property
    def running(self) -> bool:
        return self.state == RUNNING

    @property
    def stepTitle(self) -> str:
        if self.index < 0:
            return self.preparation[0] if self.preparation else ""
        return f"{self.steps[self.index][0]} ({self.index + 1} of {len(self.steps)})"

    @property
    def progress(self) -> JobProgress:
        return self.job.progress if self.job is not None else self._preparationProgress

    device = _ofRunningStep("device")
    deviceDescription = _ofRunningStep("deviceDescription")
    precision = _ofRunningStep("precision")
    cancelGraceSeconds = _ofRunningStep("cancelGraceSeconds", 0.0)

    @property
    def result(self):
        return self.results[-1] if self.results else None

    @property
    def warnings(self) -> list[str]:
        return self._finishedWarnings + (list(self.job.warnings) if self.job else [])

    @property
    def logLines(self) -> list[str]:
        return list(self._finishedLines) + (list(self.job.logLines) if self.job else [])

    def elapsedSeconds(self) -> float:
        return 0.0 if self.startTime is None else time.monotonic() - self.startTime

    def poll(self) -> list[dict]:
        if self.state != RUNNING:
            return []
        if self.job is None:
            self._prepare()
            return []
        events = self.job.poll()
        if self.job.state == SUCCEEDED:
            self.results.append(self.job.result)
            if self.index + 1 < len(self.steps):
                self._startNext()
            else:
                self.state = SUCCEEDED
        elif self.job.state in (FAILED, CANCELLED):
            self.state, self.errorMessage = self.job.state, self.job.errorMessage
        return events

    def cancel(self) -> None:
        if self.job is not None:
            self.job.cancel()
        elif self.state == RUNNING:  # still preparing: no engine process to stop
            self.preparation[1].close()
            self.state = CANCELLED
