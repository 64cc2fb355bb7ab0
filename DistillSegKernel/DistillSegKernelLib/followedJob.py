"""What a job learns from the engine's ``--progress jsonl`` lines and its exit code, whoever runs the engine: a
child process of its own (``jobRunner.EngineJob``) or a request to the long-lived worker (``engineWorker.WorkerJob``).

Exit codes of the engine (``distillseg.contract.errors``): 0 success, 2 user error (the ``error`` event carries the
sentence to show), 3 out of memory, 130 cancelled; anything else is a crash, reported with the last line the engine
wrote on stderr. The events are those of ``distillseg.contract.events``.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any, Callable

from distillseg.contract import events
from distillseg.contract.errors import EXIT_CANCELLED, EXIT_OUT_OF_MEMORY, EXIT_USER_ERROR

from .childProcess import STDERR, STDOUT
from .jobProtocol import CANCELLED, FAILED, RUNNING, SUCCEEDED, JobProgress


class FollowedJob:
    """The state of one engine run, updated line by line (a ``jobProtocol.Job`` once a subclass adds ``poll`` and
    ``cancel``). ``onEvent``: optional callback with every event dict (``{"event": "log", "message": …}`` for plain
    output lines too)."""

    stepTitle = ""  # one engine run: no step to name

    def __init__(self, onEvent: Callable[[dict], None] | None = None, maxLogLines: int = 2000,
                 cancelGraceSeconds: float = 10.0):
        self.onEvent = onEvent
        self.cancelGraceSeconds = cancelGraceSeconds
        self.state = RUNNING
        self.progress = JobProgress()
        self.device: str | None = None
        self.deviceDescription: str | None = None
        self.precision: str | None = None
        self.warnings: list[str] = []
        self.logLines: deque[str] = deque(maxlen=maxLogLines)
        self.result: dict[str, Any] | None = None
        self.errorMessage: str | None = None
        self.exitCode: int | None = None
        self.startTime: float | None = None
        self._lastStderrLine = ""
        self._cancelRequested = False

    @property
    def running(self) -> bool:
        return self.state == RUNNING

    def elapsedSeconds(self) -> float:
        return 0.0 if self.startTime is None else time.monotonic() - self.startTime

    def _takeLine(self, stream: str, line: str) -> dict | None:
        """Handle one output line; returns its event (after ``onEvent`` saw it), None for a blank line."""
        event = self._handleLine(stream, line)
        if event is not None and self.onEvent is not None:
            self.onEvent(event)
        return event

    def _handleLine(self, stream: str, line: str) -> dict | None:
        if not line.strip():
            return None
        event = events.parse_event_line(line) if stream == STDOUT else None
        if event is None:  # stderr (tracebacks, library warnings) or a plain line on stdout
            if stream == STDERR:
                self._lastStderrLine = line.strip()
            self.logLines.append(line)
            return {events.EVENT: events.LOG, events.MESSAGE: line, "stream": stream}
        kind, message = event[events.EVENT], str(event.get(events.MESSAGE, ""))
        if kind == events.PROGRESS:
            self.progress = JobProgress(
                stage=str(event.get(events.STAGE, "")), step=int(event.get(events.STEP) or 0),
                total=int(event.get(events.TOTAL) or 0), loss=event.get(events.LOSS),
                etaSeconds=event.get(events.ETA_S), elapsedSeconds=event.get(events.ELAPSED_S),
                metrics=dict(event.get(events.METRICS) or {}))
        elif kind == events.DEVICE:
            self.device = event.get(events.DEVICE)
            self.deviceDescription = event.get(events.DESCRIPTION) or self.device
            self.precision = event.get(events.PRECISION)
            self.logLines.append(f"Running on {self.deviceDescription}")
        elif kind == events.LOG:
            self.logLines.append(message)
        elif kind == events.WARNING:
            self.warnings.append(message)
            self.logLines.append(f"Warning: {message}")
        elif kind == events.RESULT:
            self.result = events.result_fields(event)
        elif kind == events.ERROR:
            self.errorMessage = message.strip() or None
            self.logLines.append(f"Error: {self.errorMessage}")
        return event

    def _finish(self, returnCode: int) -> None:
        self.exitCode = returnCode
        if returnCode == 0 and not self._cancelRequested:
            self.state = SUCCEEDED
        elif self._cancelRequested or returnCode == EXIT_CANCELLED:
            self.state = CANCELLED
            self.errorMessage = None
        else:
            self.state = FAILED
            if not self.errorMessage:
                self.errorMessage = self._crashMessage(returnCode)

    def _fail(self, message: str) -> None:
        """End as failed with ``message`` (the engine could not say why itself)."""
        self.state, self.errorMessage = FAILED, message
        self.logLines.append(f"Error: {message}")

    def _crashMessage(self, returnCode: int) -> str:
        if returnCode == EXIT_USER_ERROR and self._lastStderrLine.startswith("error: "):
            return self._lastStderrLine[len("error: "):]  # a verb without jsonl progress says it on stderr
        if returnCode == EXIT_OUT_OF_MEMORY:
            return "The job ran out of memory; try a coarser working spacing or another device."
        if returnCode < 0:
            return f"The engine was stopped by signal {-returnCode} (out of memory, or killed by the system)."
        detail = f": {self._lastStderrLine}" if self._lastStderrLine else ""
        return f"The engine stopped unexpectedly (exit code {returnCode}){detail}"
