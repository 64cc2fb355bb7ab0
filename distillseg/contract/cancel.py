"""Cancelling a running job by signal, never in the middle of putting an output in place.

The engine's command line turns SIGINT (Ctrl-C) and SIGTERM (the Slicer job runner's Cancel) into ``request``:
the first one raises ``Cancelled`` where the job is, so it unwinds (temporary files are removed on the way) and
ends in the one sentence "Cancelled." with exit code 130, its last checkpoint kept for ``--resume``. Inside
``uninterrupted()`` (the renames that put finished outputs in place) the request waits until the block is done,
so a signal never leaves a bundle half swapped. Once a cancellation is under way, further signals are noted but
not raised again, so the clean-up itself is not interrupted; ``raise_if_requested`` lets long loops honour a
request whose exception was swallowed (Python drops exceptions raised inside ``__del__`` and callbacks).

Only ``install_handlers`` (called first thing by the command line) installs a handler: a process that never calls
it (the Slicer GUI) is unaffected.
"""

from __future__ import annotations

import contextlib
import signal

# Signals that cancel a job: Ctrl-C, the Slicer job runner's Cancel, and a closed terminal.
SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


class Cancelled(BaseException):
    """The job was cancelled by a signal (a ``BaseException``, like ``KeyboardInterrupt``, so ``except Exception``
    blocks do not swallow it)."""


_state = {"depth": 0, "requested": False, "raised": False}


def request(signum=None, frame=None) -> None:
    """Signal handler: cancel now, or as soon as the current ``uninterrupted()`` block ends, or (during an import)
    at the job's next step (``raise_if_requested``)."""
    _state["requested"] = True
    if _state["depth"] == 0 and not _state["raised"] and not _importing(frame):
        _state["raised"] = True
        raise Cancelled()


def _importing(frame) -> bool:
    """Whether the signal arrived while a module was being imported: an exception raised there can unwind through
    a C extension's initialisation (torch's), which then aborts the whole process (SIGABRT) instead of unwinding;
    seen once in about 80 signals sent 0.3-0.6 s after a training started."""
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib"):
            return True
        frame = frame.f_back
    return False


def install_handlers() -> dict:
    """Make ``SIGNALS`` cancel this process's job (``request``); returns the handlers they had, for ``finish``."""
    return {number: signal.signal(number, request) for number in SIGNALS}


def finish(previous: dict) -> None:
    """After a job: forget its cancellation and put back the handlers ``install_handlers`` replaced (a job run
    inside a longer-lived process, e.g. a test), except ``request`` itself (``python -m distillseg`` installs it
    before the job): the process is about to exit, and a signal during its exit must not raise again."""
    for number, handler in previous.items():
        signal.signal(number, signal.SIG_IGN if handler is request else handler)
    _state.update(requested=False, raised=False)


def ignore_signals() -> None:
    """Ignore ``SIGNALS`` from now on (a job that is over says its last words undisturbed)."""
    for number in SIGNALS:
        signal.signal(number, signal.SIG_IGN)


def raise_if_requested() -> None:
    """Raise ``Cancelled`` if a cancellation was requested (for loops to call between steps)."""
    if _state["requested"] and _state["depth"] == 0:
        _state["raised"] = True
        raise Cancelled()


@contextlib.contextmanager
def uninterrupted(raise_after: bool = True):
    """A block that a cancellation waits for: it is raised when the outermost such block ends, or, with
    ``raise_after=False``, left for the next ``raise_if_requested`` (the command line's imports use that: a module
    torn half-way by an exception would fail in confusing ways, and the sentence is said inside the CLI)."""
    _state["depth"] += 1
    try:
        yield
    finally:
        _state["depth"] -= 1
    if raise_after and _state["depth"] == 0 and _state["requested"] and not _state["raised"]:
        _state["raised"] = True
        raise Cancelled()
