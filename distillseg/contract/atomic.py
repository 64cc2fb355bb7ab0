"""Write files and folders so that a reader (or a crash) never sees them half-written, and lock output folders.

- ``StagedFiles``: files written under hidden temporary names in their target folders, then flushed to disk
  (``fsync``) and renamed onto their final names together, in the order staged (a ``.nhdr`` header after its data
  file; every label map of a multi-scan job at the end). Any failure removes the temporaries and leaves the final
  names as they were. ``atomic_file(path, kind)`` is one such file.
- ``atomic_directory(path, kind)``: the same for a whole folder (a model bundle, a checkpoint). An existing folder
  is swapped out and removed only after the new one is in place, so a kill at any moment leaves the previous
  complete folder, the new complete folder, or (before the very first success) nothing.
- ``OutputLock(path)``: refuses a second job that writes the same output (an OS lock, released when the process
  dies, so a killed job never leaves a stale lock behind).

Every target is checked first with ``outputs.check_target`` (the engine never replaces what it did not write), and
again just before the rename; the renames run ``uninterrupted()`` (``distillseg.contract.cancel``). An ``OSError``
while writing (a full or read-only disk, no permission, …) becomes one sentence naming the final path
(``errors.write_error``), never the temporary name.

Temporary names are ``.<name>.tmp-<pid>-<random>`` (``.<name>.old-…`` for a swapped-out folder) beside the
target; a name too long to extend is shortened with a hash, the same way for every reader (``temporary_prefix``),
so ``remove_stale_temporaries`` finds what a killed writer left.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import os
import secrets
import shutil
from pathlib import Path

from distillseg.contract.cancel import uninterrupted
from distillseg.contract.errors import UserError, write_error
from distillseg.contract.outputs import OutputKind, check_target

_LONG_NAME = 120  # characters of a name kept in temporary names; longer names are shortened with a hash


def temporary_prefix(path: str | os.PathLike) -> str:
    """``.<name>`` (or ``.<first characters>~<hash>`` for a long name): how temporaries of ``path`` begin."""
    name = Path(path).name
    if len(name) > _LONG_NAME:
        name = name[:_LONG_NAME // 2] + "~" + hashlib.sha256(name.encode("utf-8")).hexdigest()[:16]
    return "." + name


def _temporary(path: Path, tag: str) -> Path:
    return path.parent / f"{temporary_prefix(path)}.{tag}-{os.getpid()}-{secrets.token_hex(4)}"


def _fsync(path: Path) -> None:
    """Flush a file (or, where the OS allows, a folder's entries) to disk."""
    if path.is_dir() and os.name == "nt":  # Windows cannot open a folder to flush it
        return
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
    elif path.is_dir():
        shutil.rmtree(path, ignore_errors=True)


def _make_parent(path: Path) -> list[Path]:
    """Create ``path``'s missing folders; returns them, innermost first, so a failed job can take them back."""
    missing = [folder for folder in path.parents if not os.path.lexists(folder)]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise write_error(path, exc) from None
    return missing


def _remove_if_empty(folders: list[Path]) -> None:
    for folder in folders:  # innermost first
        with contextlib.suppress(OSError):
            folder.rmdir()


class StagedFiles:
    """Output files written under temporary names and renamed onto their final names together on success.

    ``with StagedFiles() as staged: tmp = staged.stage(path, kind); <write tmp>`` — the block's writes go to the
    temporaries; leaving the block normally commits, an exception discards them.
    """

    def __init__(self):
        self._staged: dict[Path, tuple[Path, OutputKind]] = {}
        self._created: list[Path] = []  # folders made for the outputs, removed again if the job fails

    def stage(self, path: str | os.PathLike, kind: OutputKind) -> Path:
        """Check ``path`` and reserve its temporary (returned, not yet created)."""
        path = Path(path)
        if path in self._staged:
            raise UserError(f"{path}: two outputs of this job would be written to this file; give them different "
                            "names or output folders.")
        check_target(path, kind)
        self._created += _make_parent(path)
        self._staged[path] = (_temporary(path, "tmp"), kind)
        return self._staged[path][0]

    def _final_name_of(self, exc: OSError) -> Path | None:
        """The output an ``OSError`` belongs to: the one its file name is (or the temporary of), else the one
        staged last (a write to an open file reports no name); None when it concerns another file (an input)."""
        if not self._staged:
            return None
        if exc.filename is None:
            return list(self._staged)[-1]
        for final, (temporary, _) in self._staged.items():
            if os.fspath(exc.filename) in (os.fspath(final), os.fspath(temporary)):
                return final
        return None

    def commit(self) -> None:
        for temporary, _ in self._staged.values():
            _fsync(temporary)
        with uninterrupted():
            for final, (temporary, kind) in self._staged.items():
                check_target(final, kind)  # nothing of the user's appeared there meanwhile
                os.replace(temporary, final)
            for folder in {final.parent for final in self._staged}:
                _fsync(folder)
        self._staged.clear()
        self._created.clear()

    def discard(self) -> None:
        for temporary, _ in self._staged.values():
            with contextlib.suppress(OSError):
                temporary.unlink(missing_ok=True)
        self._staged.clear()
        _remove_if_empty(self._created)
        self._created.clear()

    def __enter__(self) -> "StagedFiles":
        return self

    def __exit__(self, kind, exc, traceback) -> bool:
        final = None
        try:
            if exc is None:
                self.commit()
                return False
            if isinstance(exc, OSError):
                final = self._final_name_of(exc)
        except OSError as error:
            exc, final = error, self._final_name_of(error)
        finally:
            self.discard()
        if final is not None:
            raise write_error(final, exc) from None
        return False


def staging(staged: StagedFiles | None):
    """``staged`` itself (a writer adds its files to a caller's batch), or a new ``StagedFiles`` of its own."""
    return contextlib.nullcontext(staged) if staged is not None else StagedFiles()


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, kind: OutputKind, staged: StagedFiles | None = None):
    """Yield a temporary path beside ``path`` for one file; it replaces ``path`` when the block succeeds (or, with
    ``staged``, when that batch is committed)."""
    with staging(staged) as batch:
        yield batch.stage(path, kind)


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike, kind: OutputKind):
    """Yield an empty temporary folder beside ``path``; on success it replaces ``path`` as a whole."""
    path = Path(path)
    check_target(path, kind)
    created = _make_parent(path)
    tmp = _temporary(path, "tmp")
    done = False
    try:
        tmp.mkdir()
        yield tmp
        for file in [*tmp.rglob("*"), tmp]:
            _fsync(file)
        with uninterrupted():
            check_target(path, kind)  # nothing of the user's appeared there meanwhile
            if os.path.lexists(path):
                old = _temporary(path, "old")
                os.replace(path, old)
                os.replace(tmp, path)
                _remove(old)
            else:
                os.replace(tmp, path)
            _fsync(path.parent)
        done = True
    except OSError as exc:
        outside = exc.filename is not None and not _under(exc.filename, tmp) and not _under(exc.filename, path)
        if outside:
            raise
        raise write_error(path, exc) from None
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
        if not done:
            _remove_if_empty(created)


def _under(name, folder: Path) -> bool:
    name = Path(os.fspath(name))
    return name == folder or folder in name.parents


class OutputLock:
    """Exclusive lock on an output path, held for the life of a job (``with OutputLock(out): ...``).

    The lock file ``.<name>.lock`` sits beside the output while the job runs; what matters is the OS lock on it
    (released when the process dies, so a killed job never blocks the next). A job that ends removes it, while
    still holding the lock, so a finished output has no debris beside it. Because of that removal, a job that got
    the lock checks that its file is still the one at the path (another job may have removed it in between) and
    otherwise tries again with the new one.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.lock_path = self.path.parent / f"{temporary_prefix(self.path)}.lock"
        self._fd: int | None = None

    def __enter__(self) -> "OutputLock":
        _make_parent(self.lock_path)
        for _ in range(100):  # each retry means another job removed the file just now: never many
            try:
                fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                raise write_error(self.path, exc) from None
            try:
                _lock_fd(fd)
            except OSError:
                os.close(fd)
                raise UserError(f"{self.path}: another job is already writing this model; wait for it or cancel "
                                "it.") from None
            if _still_at(fd, self.lock_path):
                self._fd = fd
                return self
            _unlock_fd(fd)
            os.close(fd)
        raise UserError(f"{self.path}: other jobs keep taking this output; wait for them or cancel them.")

    def __exit__(self, *exc) -> None:
        if self._fd is not None:
            if os.name != "nt":  # Windows cannot remove an open file; there the lock file stays
                with contextlib.suppress(OSError):
                    os.unlink(self.lock_path)
            _unlock_fd(self._fd)
            os.close(self._fd)
            self._fd = None


def _still_at(fd: int, path: Path) -> bool:
    """Whether the open file ``fd`` is still the file at ``path``."""
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except OSError:
        return False


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
    prefix = glob.escape(temporary_prefix(path))  # a name may hold glob characters: "scan [1]"
    for leftover in path.parent.glob(f"{prefix}.tmp-*"):
        _remove(leftover)
    for leftover in sorted(path.parent.glob(f"{prefix}.old-*")):
        if not os.path.lexists(path):
            os.replace(leftover, path)
        else:
            _remove(leftover)
