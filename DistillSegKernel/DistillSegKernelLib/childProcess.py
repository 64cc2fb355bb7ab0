"""A child process whose output lines are read without blocking, and which is stopped with its whole process tree.

Two reader threads put the child's stdout and stderr lines into a queue; ``readLines()`` drains it on the caller's
thread. The child starts in its own process group (its own session on POSIX), so stopping it reaches every process
it started: SIGTERM first, so an engine unwinds and removes its temporary files, and SIGKILL after a grace period if
it is still there (``escalate()``, called by whoever polls). On Windows ``taskkill /T /F`` ends the tree at once.
Plain Python, no Qt: the engine job runner and the engine worker client both use it.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import threading
import time
from typing import Any

STDOUT, STDERR = "stdout", "stderr"


class ChildProcess:
    """``command`` run with ``environment`` in ``cwd``; ``withInput`` gives it a stdin pipe (else /dev/null)."""

    def __init__(self, command: list[str], environment: dict[str, str] | None = None, cwd: str | None = None,
                 withInput: bool = False):
        self.command = [str(c) for c in command]
        self.environment, self.cwd, self.withInput = environment, cwd, withInput
        self.process: subprocess.Popen | None = None
        self._queue: queue.Queue = queue.Queue()
        self._closedStreams = 0
        self._killDeadline: float | None = None

    def start(self) -> "ChildProcess":
        options: dict[str, Any] = {}
        if os.name == "nt":
            options["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP | subprocess.CREATE_NO_WINDOW
        else:
            options["start_new_session"] = True  # its own process group: stopping it reaches every descendant
        self.process = subprocess.Popen(
            self.command, stdin=subprocess.PIPE if self.withInput else subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, env=self.environment, cwd=self.cwd, text=True, encoding="utf-8",
            errors="replace", bufsize=1, **options)
        for stream, name in ((self.process.stdout, STDOUT), (self.process.stderr, STDERR)):
            threading.Thread(target=self._readLines, args=(stream, name), daemon=True).start()
        return self

    def _readLines(self, stream, name: str) -> None:
        for line in iter(stream.readline, ""):
            self._queue.put((name, line.rstrip("\r\n")))
        stream.close()
        self._queue.put((name, None))  # end of this stream

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def readLines(self) -> list[tuple[str, str]]:
        """``(stream, line)`` pairs written since the last call, oldest first. Never blocks."""
        lines = []
        while True:
            try:
                name, line = self._queue.get_nowait()
            except queue.Empty:
                return lines
            if line is None:
                self._closedStreams += 1
            else:
                lines.append((name, line))

    @property
    def finished(self) -> bool:
        """True once the process has exited AND both pipes are drained by ``readLines``, so no last line is lost."""
        return self._closedStreams == 2 and self.process.poll() is not None

    @property
    def returnCode(self) -> int | None:
        return self.process.returncode if self.process else None

    def write(self, line: str) -> bool:
        """Send one line to the child's stdin; False when the child no longer reads it (it has ended)."""
        try:
            self.process.stdin.write(line + "\n")
            self.process.stdin.flush()
            return True
        except (BrokenPipeError, OSError, ValueError):
            return False

    def closeInput(self) -> None:
        if self.process is not None and self.process.stdin is not None:
            try:
                self.process.stdin.close()
            except OSError:
                pass

    def stopTree(self, graceSeconds: float) -> None:
        """Ask the whole tree to stop: SIGTERM now, SIGKILL once ``graceSeconds`` have passed (see ``escalate``)."""
        if self.process is None or self.process.poll() is not None:
            return
        if os.name == "nt":
            self.killTree()
            return
        self._signalGroup(signal.SIGTERM)
        self._killDeadline = time.monotonic() + graceSeconds

    def escalate(self) -> None:
        """SIGKILL the tree if a stop's grace period is over."""
        if self._killDeadline is not None and time.monotonic() >= self._killDeadline:
            self._killDeadline = None
            self.killTree()

    def killTree(self) -> None:
        if self.process is None:
            return
        if os.name == "nt":
            subprocess.run(["taskkill", "/T", "/F", "/PID", str(self.process.pid)], capture_output=True)
        else:
            self._signalGroup(signal.SIGKILL)

    def _signalGroup(self, signalNumber: int) -> None:
        try:
            os.killpg(self.process.pid, signalNumber)
        except (ProcessLookupError, PermissionError):
            pass  # already gone

    def __del__(self):
        # Dropped while running (e.g. Slicer closing): no orphan training or worker may stay behind.
        process = getattr(self, "process", None)
        if process is not None and process.poll() is None:
            self.killTree()
