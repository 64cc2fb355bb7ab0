"""Write files and folders so that a reader (or a crash) never sees them half-written, and lock output folders.

- ``atomic_file(path)``: yields a temporary path in the same folder; renamed onto ``path`` only on success.
- ``atomic_directory(path)``: the same for a whole folder (a model bundle). An existing folder is swapped out and
  removed only after the new one is in place, so a kill at any moment leaves the previous complete folder, the new
  complete folder, or (before the very first success) nothing.
- ``OutputLock(path)``: refuses a second job that writes the same output (an OS lock, released when the process
  dies, so a killed job never leaves a stale lock behind).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

from distillseg.contract.errors import UserError


def _hidden_temp_name(path: Path, tag: str) -> Path:
    return path.parent / f".{path.name}.{tag}-{os.getpid()}-{next(tempfile._get_candidate_names())}"


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike):
    """Yield a temporary file path beside ``path``; move it onto ``path`` if the block succeeds, else delete it.

    The temporary name keeps the final suffix (e.g. ``.nii.gz``) so writers that choose the format by suffix work.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = "".join(path.suffixes[-2:]) if path.name.endswith((".nii.gz", ".seg.nrrd")) else path.suffix
    tmp = _hidden_temp_name(path, "tmp")
    tmp = tmp.with_name(tmp.name + suffix)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike):
    """Yield an empty temporary folder beside ``path``; on success it replaces ``path`` as a whole."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _hidden_temp_name(path, "tmp")
    tmp.mkdir()
    try:
        yield tmp
        if path.exists():
            old = _hidden_temp_name(path, "old")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


class OutputLock:
    """Exclusive lock on an output path, held for the life of a job (``with OutputLock(out): ...``).

    The lock file ``.<name>.lock`` sits beside the output and stays there; what matters is the OS lock on it.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.lock_path = self.path.parent / f".{self.path.name}.lock"
        self._fd: int | None = None

    def __enter__(self) -> "OutputLock":
        self.lock_path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            _lock_fd(fd)
        except OSError:
            os.close(fd)
            raise UserError(f"{self.path}: another job is already writing this model; wait for it or cancel it.")
        self._fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self._fd is not None:
            _unlock_fd(self._fd)
            os.close(self._fd)
            self._fd = None


if os.name == "nt":  # pragma: no cover - exercised on Windows only
    import msvcrt

    def _lock_fd(fd: int) -> None:
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)

    def _unlock_fd(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)

else:
    import fcntl

    def _lock_fd(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def _unlock_fd(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)


def remove_stale_temporaries(path: str | os.PathLike) -> None:
    """Clean up after a writer that was killed (call while holding the ``OutputLock``).

    Deletes ``.<name>.tmp-*``; a ``.<name>.old-*`` folder is the previous complete version: it is put back if the
    kill came between the two renames of ``atomic_directory`` (``path`` missing), else deleted.
    """
    path = Path(path)
    if not path.parent.is_dir():
        return
    for leftover in path.parent.glob(f".{path.name}.tmp-*"):
        if leftover.is_dir():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)
    for leftover in sorted(path.parent.glob(f".{path.name}.old-*")):
        if not path.exists():
            os.replace(leftover, path)
        else:
            shutil.rmtree(leftover, ignore_errors=True)
