"""Run one engine command as a child process and follow its ``--progress jsonl`` events without blocking.

Plain Python (no Qt), so the same code runs in Slicer, in scripts and in tests. Two reader threads put the child's
stdout (one JSON event per line) and stderr (tracebacks, library warnings) into a queue; ``poll()`` drains the queue
on the caller's thread — in Slicer a ``qt.QTimer`` calls it — and updates the job's state. ``jobProtocol.waitFor`` is the
blocking form for scripts and tests.

Cancel ends the whole process tree: the child starts in its own process group (its own session on POSIX), gets
SIGTERM first so the engine unwinds and removes its temporary files (exit code 130), and SIGKILL after a grace period
if it is still there. On Windows ``taskkill /T /F`` ends the tree.

Exit codes of the engine (``distillseg.contract.errors``): 0 success, 2 user error (the ``error`` event carries the
sentence to show), 3 out of memory, 130 cancelled; anything else is a crash, reported with the last line it wrote on
stderr. The events are those of ``distillseg.contract.events``. An ``EngineJob`` is a ``jobProtocol.Job``.
"""

from __future__ import annotations

import contextlib
import os
import queue
import shutil
import signal
import subprocess
import threading
import time
from collections import deque
from typing import Any, Callable

from distillseg.contract import events
from distillseg.contract.errors import EXIT_CANCELLED, EXIT_OUT_OF_MEMORY, EXIT_USER_ERROR

from .jobProtocol import CANCELLED, FAILED, RUNNING, SUCCEEDED, JobProgress, waitFor


class EngineJob:
    """One child process of the engine, followed through its progress events.

    ``command``: the full argument list (see ``engine.engineCommand``); ``environment``: the child's environment
    (see ``engine.engineEnvironment``); ``onEvent``: optional callback called from ``poll()`` with every event dict
    (``{"event": "log", "message": …}`` for plain output lines too).
    """

    stepTitle = ""  # one engine run: no step to name

    def __init__(self, command: list[str], environment: dict[str, str] | None = None, cwd: str | None = None,
                 onEvent: Callable[[dict], None] | None = None, maxLogLines: int = 2000,
                 cancelGraceSeconds: float = 10.0):
        self.command = [str(c) for c in command]
        self.environment = environment
        self.cwd = cwd
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
        self._process: subprocess.Popen | None = None
        self._queue: queue.Queue = queue.Queue()
        self._readers: list[threading.Thread] = []
        self._lastStderrLine = ""
        self._closedStreams = 0
        self._cancelRequested = False
        self._killDeadline: float | None = None

    # ------------------------------------------------------------------------------------------------ lifecycle
    def start(self) -> "EngineJob":
        """Start the child process and its two reader threads; returns immediately."""
        options: dict[str, Any] = {}
        if os.name == "nt":
            options["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP | subprocess.CREATE_NO_WINDOW
        else:
            options["start_new_session"] = True  # its own process group: cancel reaches every descendant
        self.startTime = time.monotonic()
        self._process = subprocess.Popen(
            self.command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=self.environment, cwd=self.cwd, text=True, encoding="utf-8", errors="replace", bufsize=1, **options)
        for stream, name in ((self._process.stdout, "stdout"), (self._process.stderr, "stderr")):
            reader = threading.Thread(target=self._readLines, args=(stream, name), daemon=True)
            reader.start()
            self._readers.append(reader)
        return self

    def _readLines(self, stream, name: str) -> None:
        for line in iter(stream.readline, ""):
            self._queue.put((name, line.rstrip("\r\n")))
        stream.close()
        self._queue.put((name, None))  # end of this stream

    @property
    def running(self) -> bool:
        return self.state == RUNNING

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def elapsedSeconds(self) -> float:
        return 0.0 if self.startTime is None else time.monotonic() - self.startTime

    # ------------------------------------------------------------------------------------------------ events
    def poll(self) -> list[dict]:
        """Handle everything the child wrote since the last call; returns those events. Never blocks."""
        events = []
        while True:
            try:
                name, line = self._queue.get_nowait()
            except queue.Empty:
                break
            if line is None:
                self._closedStreams += 1
                continue
            event = self._handleLine(name, line)
            if event is not None:
                events.append(event)
                if self.onEvent is not None:
                    self.onEvent(event)
        self._escalateCancel()
        # Finished only when the process has exited AND both pipes are drained, so no last line is lost.
        if self.state == RUNNING and self._closedStreams == 2 and self._process.poll() is not None:
            self._finish(self._process.returncode)
        return events

    def _handleLine(self, name: str, line: str) -> dict | None:
        if not line.strip():
            return None
        event = events.parse_event_line(line) if name == "stdout" else None
        if event is None:  # stderr (tracebacks, library warnings) or a plain line on stdout
            if name == "stderr":
                self._lastStderrLine = line.strip()
            self.logLines.append(line)
            return {events.EVENT: events.LOG, events.MESSAGE: line, "stream": name}
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

    def _crashMessage(self, returnCode: int) -> str:
        if returnCode == EXIT_USER_ERROR and self._lastStderrLine.startswith("error: "):
            return self._lastStderrLine[len("error: "):]  # a verb without jsonl progress says it on stderr
        if returnCode == EXIT_OUT_OF_MEMORY:
            return "The job ran out of memory; try a coarser working spacing or another device."
        if returnCode < 0:
            return f"The engine was stopped by signal {-returnCode} (out of memory, or killed by the system)."
        detail = f": {self._lastStderrLine}" if self._lastStderrLine else ""
        return f"The engine stopped unexpectedly (exit code {returnCode}){detail}"

    # ------------------------------------------------------------------------------------------------ control
    def cancel(self) -> None:
        """Ask the whole process tree to stop (SIGTERM now, SIGKILL after the grace period); returns at once."""
        if self.state != RUNNING or self._process is None or self._cancelRequested:
            return
        self._cancelRequested = True
        if os.name == "nt":
            subprocess.run(["taskkill", "/T", "/F", "/PID", str(self._process.pid)], capture_output=True)
            return
        self._signalGroup(signal.SIGTERM)
        self._killDeadline = time.monotonic() + self.cancelGraceSeconds

    def _signalGroup(self, signalNumber: int) -> None:
        try:
            os.killpg(self._process.pid, signalNumber)
        except (ProcessLookupError, PermissionError):
            pass  # already gone

    def _escalateCancel(self) -> None:
        if self._killDeadline is not None and time.monotonic() >= self._killDeadline:
            self._killDeadline = None
            if os.name != "nt":
                self._signalGroup(signal.SIGKILL)

    def __del__(self):
        # A job object dropped while its process runs (e.g. Slicer closing) must not leave an orphan training.
        if getattr(self, "state", None) == RUNNING and getattr(self, "_process", None) is not None \
                and self._process.poll() is None:
            if os.name == "nt":
                subprocess.run(["taskkill", "/T", "/F", "/PID", str(self._process.pid)], capture_output=True)
            else:
                self._signalGroup(signal.SIGKILL)


@contextlib.contextmanager
def removedIfStartFails(folder):
    """Around starting a job whose temporary files go to ``folder``: if starting raises, remove the folder (the
    caller made it; a refused start leaves nothing behind) and let the error through."""
    try:
        yield
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise


def runEngine(command: list[str], environment: dict[str, str] | None = None,
              timeoutSeconds: float | None = None) -> EngineJob:
    """Start a job and wait for it (for scripts and tests); the returned job holds state, result and error."""
    job = EngineJob(command, environment).start()
    waitFor(job, timeoutSeconds)
    return job

