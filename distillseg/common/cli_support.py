"""What every CLI verb shares when it runs: seeding, and turning failures into one sentence and an exit code."""

from __future__ import annotations

import argparse
import errno
import os
import random
from typing import Callable

import numpy as np

from distillseg.contract import cancel
from distillseg.contract.errors import CancelledError, OutOfMemoryError, UserError, write_error
from distillseg.common.progress import Progress


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch, and ask torch for deterministic kernels where it has them."""
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


def _is_out_of_memory(exc: BaseException) -> bool:
    import torch

    if isinstance(exc, (MemoryError, torch.cuda.OutOfMemoryError)):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text
                                              or "not enough memory" in text)


# Disk and permission errors a job may meet outside the engine's own writers (which name their output already):
# they become one sentence naming the file, never a traceback.
_FILE_ERRNOS = (errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG, errno.EIO, errno.ENAMETOOLONG,
                getattr(errno, "EDQUOT", errno.ENOSPC))


def _cancelled(exc: BaseException | None) -> bool:
    """True when ``exc`` is, or was raised while handling or because of, a cancellation (Python wraps an
    exception raised inside some hooks, e.g. ``__set_name__`` during an import, in a ``RuntimeError``)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, (cancel.Cancelled, KeyboardInterrupt)):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


def _out_of_memory(args: argparse.Namespace) -> OutOfMemoryError:
    device = getattr(args, "device", "auto")
    return OutOfMemoryError(
        f"The job ran out of memory on device '{device}'; try a coarser --spacing, a smaller --patch-size or "
        "--sliding-window, --precision bf16, or another device.")


def _sentence(exc: BaseException, args: argparse.Namespace) -> UserError | None:
    """The sentence and exit code a failure ends in, or None for a bug (which keeps its traceback)."""
    if isinstance(exc, UserError):
        return exc
    if _cancelled(exc) or isinstance(exc, BrokenPipeError):  # a broken pipe: whoever read the progress is gone
        return CancelledError("Cancelled.")
    if isinstance(exc, OSError) and exc.errno in _FILE_ERRNOS and exc.filename:
        return write_error(exc.filename, exc)
    if isinstance(exc, (MemoryError, RuntimeError)) and _is_out_of_memory(exc):
        return _out_of_memory(args)
    return None


def progress_for(args: argparse.Namespace) -> Progress:
    """Where the verb's progress and result go: ``--progress`` and ``--json``."""
    return Progress(getattr(args, "progress", "auto"), json_result=getattr(args, "json", False))


def run_verb(args: argparse.Namespace) -> int:
    """Run one parsed command's verb inside a process that ``run_cli`` already runs (the engine worker's requests):
    a user error, disk error or out-of-memory ends in its sentence and exit code and the process goes on; a
    cancellation (or a reader of stdout that has gone) ends the whole process, through ``run_cli``."""
    progress = progress_for(args)
    try:
        return int(args.verb_function(args, progress) or 0)
    except Exception as exc:
        failure = _sentence(exc, args)
        if failure is None or isinstance(failure, CancelledError):
            raise
        progress.error(str(failure))
        return failure.exit_code


def run_cli(parse: Callable[[], argparse.Namespace]) -> int:
    """Parse the command line with ``parse`` and run its verb (``args.verb_function(args, progress)``).

    User errors, cancellation (SIGINT, SIGTERM, SIGHUP, from the moment this is called: "Cancelled.", exit 130),
    disk errors and out-of-memory end in one sentence and a non-zero exit code; stdout is closed cleanly even when
    its reader has gone. Anything else is a bug and keeps its traceback.
    """
    previous, args, progress = {}, argparse.Namespace(), Progress("none")
    try:
        with cancel.uninterrupted(raise_after=False):  # a signal while they are installed is only noted ...
            previous = cancel.install_handlers()
        cancel.raise_if_requested()  # ... and honoured here, as one that came while the command line was loading
        args = parse()
        progress = progress_for(args)
        return int(args.verb_function(args, progress) or 0)
    except BaseException as exc:  # noqa: B036 - every failure is either one sentence or re-raised
        failure = _sentence(exc, args)
        if failure is None:
            raise
        cancel.ignore_signals()  # the job is over: another Ctrl-C must not interrupt the last words
        progress.error(str(failure))
        return failure.exit_code
    finally:
        progress.close()
        cancel.finish(previous)
