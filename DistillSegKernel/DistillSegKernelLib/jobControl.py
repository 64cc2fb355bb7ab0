"""One engine job at a time for a module (or a script) on one model store: started, then finished or abandoned.

A method's job control (``OneShotSegLib.jobControl``, ``IncrementalLapLib.lapJobControl``) subclasses ``JobControl``
with its ``method`` and starts its jobs through ``follow``, giving with each job what to do when it succeeds
(``finish``: bring the result into the scene or the model list, returns the outcome the widget reports) and when it
fails or is cancelled (``abandon``: remove what the job left). The module widget polls ``job`` and then calls
``finishJob`` or ``abandonJob``. Qt-free, so it runs on a headless scene in the tests.

Closing the scene takes the job's nodes with it (the scan it segments, the segmentation it writes into, the
parameter node): ``sceneClosing`` cancels the job, and however it ends it is abandoned, never finished (a cancelled
training keeps its checkpoint, so Resume continues it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from .jobProtocol import CANCELLED, Job, waitFor
from .modelStore import ModelStore


class JobControl:
    """The job of one module; ``method`` (a ``distillseg.contract.manifest`` method) is the subclass's."""

    method = ""

    def __init__(self, storeFolder: str | Path | None = None):
        self.store = ModelStore(self.method, storeFolder)
        self.job: Job | None = None
        self._finish: Callable[[], Any] | None = None
        self._abandon: Callable[[], None] | None = None

    @property
    def busy(self) -> bool:
        return self.job is not None and self.job.running

    def follow(self, job: Job, finish: Callable[[], Any], abandon: Callable[[], None] | None) -> Job:
        """Make ``job`` the module's job, with what to do when it succeeds and when it does not."""
        self.job, self._finish, self._abandon = job, finish, abandon
        return job

    @property
    def finishable(self) -> bool:
        """True while a job has a result to bring into the scene (not after ``sceneClosing``)."""
        return self._finish is not None

    def sceneClosing(self) -> None:
        """The scene is closing: cancel the job; it will be abandoned, not finished, whatever its end."""
        if self.busy:
            self.job.cancel()
        self._finish = None

    def finishJob(self):
        """Bring a successful job's result into the scene / model list; returns what ``finish`` returns."""
        finish, self._finish, self._abandon = self._finish, None, None
        return finish()

    def cancelOnceStarted(self, modelName: str, timeoutSeconds: float, pump=None) -> list[str]:
        """Follow the module's job until its first step, cancel it and abandon it; returns what went wrong, as
        sentences (it did not end cancelled, or it left the model ``modelName``). The self-tests' stories check
        Cancel with it."""
        job = self.job
        waitFor(job, timeoutSeconds, pump, until=lambda running: running.progress.step > 0)
        job.cancel()
        problems = [] if waitFor(job, timeoutSeconds, pump) == CANCELLED else [f"a cancelled job ended {job.state}"]
        self.abandonJob()
        if modelName in [model.name for model in self.store.models()]:
            problems.append(f"a cancelled job left the model '{modelName}'")
        return problems

    def abandonJob(self) -> None:
        """Forget a failed or cancelled job and remove what it left."""
        abandon, self._finish, self._abandon = self._abandon, None, None
        if abandon is not None:
            abandon()
