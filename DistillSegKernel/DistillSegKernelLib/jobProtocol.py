"""What a job the module widgets and effects can drive offers, whether one engine process (``jobRunner.EngineJob``)
or several run one after another (``jobChain.JobChain``), and the one way to wait for such a job.

Times are in seconds. ``progress`` is the latest ``progress`` event of the engine; ``logLines`` what the job
printed (oldest first); ``stepTitle`` names the step running when a job is made of several engine runs ("" when it
is one).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, runtime_checkable

RUNNING, SUCCEEDED, FAILED, CANCELLED = "running", "succeeded", "failed", "cancelled"


@dataclass
class JobProgress:
    """The latest ``progress`` event: ``step`` of ``total`` in ``stage``; times in seconds (None until known)."""

    stage: str = ""
    step: int = 0
    total: int = 0
    loss: float | None = None
    metrics: dict[str, Any] = field(default_factory=dict)  # other named numbers of the step
    etaSeconds: float | None = None
    elapsedSeconds: float | None = None

    @property
    def fraction(self) -> float:
        """Done fraction of the current stage, 0..1."""
        return min(1.0, self.step / self.total) if self.total > 0 else 0.0


@runtime_checkable
class Job(Protocol):
    """A running or finished engine job as the widgets see it."""

    state: str
    result: dict[str, Any] | None

    @property
    def running(self) -> bool: ...

    @property
    def stepTitle(self) -> str: ...

    @property
    def progress(self) -> JobProgress: ...

    @property
    def device(self) -> str | None: ...

    @property
    def deviceDescription(self) -> str | None: ...

    @property
    def precision(self) -> str | None: ...

    @property
    def errorMessage(self) -> str | None: ...

    @property
    def logLines(self) -> Sequence[str]: ...

    @property
    def cancelGraceSeconds(self) -> float: ...

    @property
    def warnings(self) -> Sequence[str]:
        """The engine's ``warning`` messages so far (e.g. a worker that had to be started again)."""

    def poll(self) -> list[dict]:
        """Handle what the engine wrote since the last call; returns those events. Never blocks."""

    def cancel(self) -> None:
        """Ask the job to stop; returns at once (``poll`` sees it end)."""

    def elapsedSeconds(self) -> float: ...


def waitFor(job: Job, timeoutSeconds: float | None = None, pump: Callable[[], Any] | None = None,
            interval: float = 0.05, cancelOnTimeout: bool = False, until: Callable[[Job], bool] | None = None) -> str:
    """Poll ``job`` until it ends (or ``until(job)`` holds) or ``timeoutSeconds`` pass; returns its state
    (``RUNNING`` after a timeout, or when ``until`` was met).

    ``pump`` (e.g. ``slicer.app.processEvents``) keeps a GUI alive meanwhile. With ``cancelOnTimeout`` a job still
    running at the deadline is cancelled, given its grace period to stop, and ``TimeoutError`` is raised.
    """
    deadline = None if timeoutSeconds is None else time.monotonic() + timeoutSeconds
    while True:
        job.poll()
        if pump is not None:
            pump()
        if not job.running or (until is not None and until(job)):
            return job.state
        if deadline is not None and time.monotonic() >= deadline:
            if not cancelOnTimeout:
                return job.state
            job.cancel()
            waitFor(job, job.cancelGraceSeconds + 5, pump, interval)
            raise TimeoutError(f"The engine job did not finish within {timeoutSeconds:.0f} s.")
        time.sleep(interval)


def requireSuccess(job: Job, timeoutSeconds: float, pump: Callable[[], Any] | None = None) -> Job:
    """``waitFor`` the job (cancelled at the deadline); ``RuntimeError`` with its state and error unless it
    succeeded. For self-tests and scripts, which have no one to show a failure to."""
    if waitFor(job, timeoutSeconds, pump, cancelOnTimeout=True) != SUCCEEDED:
        raise RuntimeError(f"Engine job {job.stepTitle or ''} {job.state}: {job.errorMessage}".replace("  ", " "))
    return job


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
