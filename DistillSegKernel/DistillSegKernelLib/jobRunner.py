"""Run one engine command as a child process and follow its ``--progress jsonl`` events without blocking.

Plain Python (no Qt), so the same code runs in Slicer, in scripts and in tests. ``childProcess.ChildProcess`` reads
the child's stdout (one JSON event per line) and stderr (tracebacks, library warnings) on two threads; ``poll()``
takes those lines on the caller's thread — in Slicer a ``qt.QTimer`` calls it — and ``followedJob.FollowedJob``
turns them and the exit code into the job's state. ``jobProtocol.waitFor`` is the blocking form for scripts and
tests.

Cancel ends the whole process tree: SIGTERM first so the engine unwinds and removes its temporary files (exit code
130), and SIGKILL after a grace period if it is still there. An ``EngineJob`` is a ``jobProtocol.Job``.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from typing import Callable

from .childProcess import ChildProcess
from .followedJob import FollowedJob
from .jobProtocol import RUNNING, waitFor


class EngineJob(FollowedJob):
    """One child process of the engine, followed through its progress events.

    ``command``: the full argument list (see ``engine.engineCommand``); ``environment``: the child's environment
    (see ``engine.engineEnvironment``); ``onEvent``: as ``FollowedJob``'s.
    """

    def __init__(self, command: list[str], environment: dict[str, str] | None = None, cwd: str | None = None,
                 onEvent: Callable[[dict], None] | None = None, maxLogLines: int = 2000,
                 cancelGraceSeconds: float = 10.0):
        super().__init__(onEvent, maxLogLines, cancelGraceSeconds)
        self.command = [str(c) for c in command]
        self._child = ChildProcess(self.command, environment, cwd)

    def start(self) -> "EngineJob":
        """Start the child process and its two reader threads; returns immediately."""
        self.startTime = time.monotonic()
        self._child.start()
        return self

    @property
    def pid(self) -> int | None:
        return self._child.pid

    def poll(self) -> list[dict]:
        """Handle everything the child wrote since the last call; returns those events. Never blocks."""
        events = [event for stream, line in self._child.readLines()
                  if (event := self._takeLine(stream, line)) is not None]
        self._child.escalate()
        if self.state == RUNNING and self._child.finished:
            self._finish(self._child.returnCode)
        return events

    def cancel(self) -> None:
        """Ask the whole process tree to stop (SIGTERM now, SIGKILL after the grace period); returns at once."""
        if self.state != RUNNING or self._child.process is None or self._cancelRequested:
            return
        self._cancelRequested = True
        self._child.stopTree(self.cancelGraceSeconds)


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

