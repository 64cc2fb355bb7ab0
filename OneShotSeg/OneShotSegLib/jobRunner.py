"""Run one engine command as a child process and follow its ``--progress jsonl`` events without blocking.

Plain Python (no Qt), so the same code runs in Slicer, in scripts and in tests. Two reader threads put the child's
stdout (one JSON event per line) and stderr (tracebacks, library warnings) into a queue; ``poll()`` drains the queue
on the caller's thread — in Slicer a ``qt.QTimer`` calls it — and updates the job's state. ``wait()`` is the
blocking form for scripts and tests.

Cancel ends the whole process tree: the child starts in its own process group (its own session on POSIX), gets
SIGTERM first so the engine unwinds and removes its temporary files (exit code 130), and SIGKILL after a grace period
if it is still there. On Windows ``taskkill /T /F`` ends the tree.

Exit codes of the engine: 0 success, 2 user error (the ``error`` event carries the sentence to show), 3 out of
memory, 130 cancelled; anything else is a crash, reported with the last line it wrote on stderr.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import signal
import subprocess
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable

EXIT_USER_ERROR = 2
EXIT_OUT_OF_MEMORY = 3
EXIT_CANCELLED = 130

RUNNING, SUCCEEDED, FAILED, CANCELLED = "running", "succeeded", "failed", "cancelled"


@dataclass
class JobProgress:
    """The latest ``progress`` event: ``step`` of ``total`` in ``stage``; times in seconds (None until known)."""

    stage: str = ""
    step: int = 0
    total: int = 0
    loss: float | None = None
    etaSeconds: float | None = None
    elapsedSeconds: float | None = None
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def fraction(self) -> float:
        """Done fraction of the current stage, 0..1."""
        return min(1.0, self.step / self.total) if self.total > 0 else 0.0


def formatDuration(seconds: float | None) -> str:
    """``"1 h 05 min"``, ``"3 min 20 s"``, ``"40 s"``; empty when unknown."""
    if seconds is None:
        return ""
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
    if seconds >= 60:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds} s"


def describeProgress(progress: JobProgress) -> str:
    """One status line: ``"student 120/400 · loss 0.4123 · about 3 min 20 s left"``."""
    if not progress.stage:
        return ""
    parts = [f"{progress.stage} {progress.step}/{progress.total}"]
    if progress.loss is not None:
        parts.append(f"loss {progress.loss:.4g}")
    if progress.etaSeconds is not None:
        parts.append(f"about {formatDuration(progress.etaSeconds)} left")
    return " · ".join(parts)


class EngineJob:
    """One child process of the engine, followed through its progress events.

    ``command``: the full argument list (see ``engine.engineCommand``); ``environment``: the child's environment
    (see ``engine.engineEnvironment``); ``onEvent``: optional callback called from ``poll()`` with every event dict
    (``{"event": "log", "message": …}`` for plain output lines too).
    """

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
        if name == "stderr":
            self._lastStderrLine = line.strip()
            self.logLines.append(line)
            return {"event": "log", "message": line, "stream": "stderr"}
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            event = None
        if not isinstance(event, dict) or "event" not in event:
            self.logLines.append(line)
            return {"event": "log", "message": line, "stream": "stdout"}
        kind = event["event"]
        if kind == "progress":
            self.progress = JobProgress(
                stage=str(event.get("stage", "")), step=int(event.get("step") or 0), total=int(event.get("total") or 0),
                loss=event.get("loss"), etaSeconds=event.get("eta_s"), elapsedSeconds=event.get("elapsed_s"),
                metrics=dict(event.get("metrics") or {}))
        elif kind == "device":
            self.device = event.get("device")
            self.deviceDescription = event.get("description") or self.device
            self.precision = event.get("precision")
            self.logLines.append(f"Running on {self.deviceDescription}")
        elif kind == "log":
            self.logLines.append(str(event.get("message", "")))
        elif kind == "warning":
            self.warnings.append(str(event.get("message", "")))
            self.logLines.append(f"Warning: {event.get('message', '')}")
        elif kind == "result":
            self.result = {k: v for k, v in event.items() if k != "event"}
        elif kind == "error":
            self.errorMessage = str(event.get("message", "")).strip() or None
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

    def wait(self, timeoutSeconds: float | None = None, pollInterval: float = 0.05) -> str:
        """Block until the job ends (or the timeout passes), handling events; returns the state."""
        deadline = None if timeoutSeconds is None else time.monotonic() + timeoutSeconds
        while True:
            self.poll()
            if self.state != RUNNING:
                return self.state
            if deadline is not None and time.monotonic() >= deadline:
                return self.state
            time.sleep(pollInterval)

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
    job.wait(timeoutSeconds)
    return job

