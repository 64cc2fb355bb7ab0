"""The Slicer side of ``distillseg worker``: one long-lived engine process that segments scan after scan without
paying the interpreter start, the torch/MONAI imports and the model loading again (protocol:
``distillseg.contract.worker``).

``startRequest(arguments)`` sends a ``segment`` command line to the shared worker and returns a ``WorkerJob``, which
the widgets drive like an ``EngineJob`` (a ``jobProtocol.Job``): the same progress, device, log, result and error,
from the same event lines. The worker runs one request at a time; later requests wait in order, and any job's
``poll()`` moves the queue on. Cancel stops the worker's whole process tree (as it stops an engine job's): the
request ends cancelled and the next request starts a fresh worker. A worker that ends in the middle of a request
(killed by the system, crashed) is started again once and gets the request again, which the job reports as a
warning; if that one ends too, the job fails with the engine's crash message. A worker that ended between requests
(it exits after ``idleMinutes`` without one) is simply started again for the next. Plain Python, no Qt.
"""

from __future__ import annotations

import atexit
import itertools
import time
from collections import deque
from typing import Callable

from distillseg.contract import events
from distillseg.contract.worker import DEFAULT_IDLE_MINUTES, EXIT_CODE, REQUEST_ID, is_done, request_line

from .childProcess import STDOUT, ChildProcess
from .engine import engineCommand, engineEnvironment
from .followedJob import FollowedJob
from .jobProtocol import CANCELLED, RUNNING

# A worker idle for nearly its time-out may exit while a request is on its way: start a fresh one instead.
IDLE_MARGIN_S = 30.0


class WorkerJob(FollowedJob):
    """One request to an ``EngineWorker``: ``arguments`` is the command line after ``distillseg``."""

    def __init__(self, worker: "EngineWorker", requestId: str, arguments: list[str],
                 onEvent: Callable[[dict], None] | None = None):
        super().__init__(onEvent, cancelGraceSeconds=worker.cancelGraceSeconds)
        self.worker, self.requestId, self.arguments = worker, requestId, [str(a) for a in arguments]
        self.restarts = 0  # times the worker was started again for this request
        self.startTime = time.monotonic()
        self._events: list[dict] = []

    def poll(self) -> list[dict]:
        """Move the worker on and return this job's events since the last call. Never blocks."""
        self.worker.pump()
        taken, self._events = self._events, []
        return taken

    def cancel(self) -> None:
        self.worker.cancel(self)

    def _take(self, stream: str, line: str) -> None:
        event = self._takeLine(stream, line)
        if event is not None:
            self._events.append(event)


class EngineWorker:
    """A ``distillseg worker`` child process (started when a request needs it) and its queue of requests.

    ``environment``: the worker's environment (see ``engine.engineEnvironment``); ``python``: the interpreter (see
    ``engine.engineCommand``).
    """

    def __init__(self, environment: dict[str, str] | None = None, python: str | None = None,
                 idleMinutes: float = DEFAULT_IDLE_MINUTES, cancelGraceSeconds: float = 10.0):
        self.environment, self.python = environment, python
        self.idleMinutes, self.cancelGraceSeconds = idleMinutes, cancelGraceSeconds
        self.starts = 0  # worker processes started so far
        self._child: ChildProcess | None = None
        self._current: WorkerJob | None = None
        self._waiting: deque[WorkerJob] = deque()
        self._lastAnswer = time.monotonic()
        self._ids = itertools.count(1)

    @property
    def pid(self) -> int | None:
        """The running worker's process id (None when no worker runs)."""
        return self._child.pid if self._child is not None else None

    def submit(self, arguments: list[str], onEvent: Callable[[dict], None] | None = None) -> WorkerJob:
        """Queue a request; it is sent as soon as the worker is free. Returns its job at once."""
        job = WorkerJob(self, str(next(self._ids)), arguments, onEvent)
        self._waiting.append(job)
        self.pump()
        return job

    def pump(self) -> None:
        """Route what the worker wrote to the request it belongs to, notice a worker that ended, send the next
        request. Never blocks."""
        if self._child is not None:
            for stream, line in self._child.readLines():
                self._route(stream, line)
            self._child.escalate()
            if self._child.finished:
                self._ended()
        if self._current is None and self._waiting:
            self._send(self._waiting.popleft())

    def cancel(self, job: WorkerJob) -> None:
        """A waiting request is dropped; the running one ends with the worker's process tree."""
        if job.state != RUNNING or job._cancelRequested:
            return
        job._cancelRequested = True
        if job in self._waiting:
            self._waiting.remove(job)
            job.state = CANCELLED
        elif job is self._current and self._child is not None:
            self._child.stopTree(self.cancelGraceSeconds)

    def close(self) -> None:
        """Stop the worker now (a running request ends cancelled at its next poll)."""
        if self._current is not None:
            self._current._cancelRequested = True
        if self._child is not None:
            self._child.closeInput()
            self._child.killTree()

    # ------------------------------------------------------------------------------------------------ internals
    def _route(self, stream: str, line: str) -> None:
        job = self._current
        event = events.parse_event_line(line) if stream == STDOUT else None
        if event is not None and is_done(event):
            if job is not None and event.get(REQUEST_ID) == job.requestId:
                job._finish(int(event.get(EXIT_CODE, 1)))
                self._current, self._lastAnswer = None, time.monotonic()
            return
        if job is not None:
            job._take(stream, line)

    def _send(self, job: WorkerJob) -> None:
        idleSeconds = time.monotonic() - self._lastAnswer
        if self._child is not None and idleSeconds > self.idleMinutes * 60 - IDLE_MARGIN_S:
            self._child.closeInput()  # it is about to exit on its own; let it, and start another
            self._child = None
        if self._child is None:
            self._child = ChildProcess(engineCommand(["worker", "--idle-minutes", f"{self.idleMinutes:g}"],
                                                     self.python), self.environment, withInput=True).start()
            self.starts += 1
        self._current = job
        # A worker that has just died does not read this: its end is noticed by pump(), which handles it.
        self._child.write(request_line(job.requestId, job.arguments))

    def _ended(self) -> None:
        returnCode, self._child = self._child.returnCode, None
        job, self._current = self._current, None
        if job is None:
            return  # ended between requests (idle time-out): the next request starts another
        if job._cancelRequested:
            job._finish(returnCode)
        elif job.restarts == 0:
            job.restarts = 1
            # Reported as the engine's own warnings are, so the widgets show it in their log.
            job._take(STDOUT, events.event_line(events.WARNING, **{events.MESSAGE: (
                f"{job._crashMessage(returnCode).rstrip('.')}; the engine worker was started again and given the "
                "request again.")}))
            self._send(job)
        else:
            job._fail(job._crashMessage(returnCode) if returnCode else
                      "The engine worker ended without answering the request.")


_sharedWorkers: dict[tuple, EngineWorker] = {}


def sharedWorker(environment: dict[str, str] | None = None) -> EngineWorker:
    """The worker this Slicer session shares between its modules and effects, one per child environment
    (``environment`` as for ``engine.engineEnvironment``)."""
    childEnvironment = engineEnvironment(environment)
    # The command too: within ``engine.standInEngine()`` the same environment runs the stand-in engine.
    key = (tuple(engineCommand(["worker"])), tuple(sorted(childEnvironment.items())))
    if key not in _sharedWorkers:
        _sharedWorkers[key] = EngineWorker(childEnvironment)
    return _sharedWorkers[key]


def startRequest(arguments: list[str], environment: dict[str, str] | None = None,
                 onEvent: Callable[[dict], None] | None = None) -> WorkerJob:
    """Run ``distillseg ARGUMENTS`` (a ``segment`` verb) in the shared worker; returns its running job."""
    return sharedWorker(environment).submit(arguments, onEvent)


@atexit.register
def stopSharedWorkers() -> None:
    """Stop every shared worker (Slicer closing; tests that need a cold start)."""
    for worker in _sharedWorkers.values():
        worker.close()
    _sharedWorkers.clear()
