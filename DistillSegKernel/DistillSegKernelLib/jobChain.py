"""Engine commands run one after another and followed as one job (a ``jobProtocol.Job``).

IncrementalLap's learning is such a chain: ``lap learn`` (or ``lap train`` for a first model), then ``lap evaluate``
of the previous and the new version on the frames marked for checking. A failed or cancelled step ends the chain.
"""

from __future__ import annotations

import time
from collections import deque

from .jobProtocol import CANCELLED, FAILED, RUNNING, SUCCEEDED, JobProgress
from .jobRunner import EngineJob


def _ofRunningStep(name: str, before=None) -> property:
    """A read-only attribute of the chain that is the running step's ``name`` (``before`` until a step starts)."""
    return property(lambda chain: getattr(chain.job, name) if chain.job is not None else before)


class JobChain:
    """``steps``: ``(title, command)`` pairs run in order, each an ``EngineJob`` with ``environment`` and
    ``onEvent``; ``results`` holds each finished step's ``result`` event. What the widget reads (progress, device,
    error, cancel grace) is the running step's; ``logLines`` covers every step so far."""

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

    @property
    def running(self) -> bool:
        return self.state == RUNNING

    @property
    def stepTitle(self) -> str:
        return f"{self.steps[self.index][0]} ({self.index + 1} of {len(self.steps)})" if self.index >= 0 else ""

    progress = _ofRunningStep("progress", JobProgress())
    device = _ofRunningStep("device")
    deviceDescription = _ofRunningStep("deviceDescription")
    precision = _ofRunningStep("precision")
    errorMessage = _ofRunningStep("errorMessage")
    cancelGraceSeconds = _ofRunningStep("cancelGraceSeconds", 0.0)

    @property
    def result(self):
        return self.results[-1] if self.results else None

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
