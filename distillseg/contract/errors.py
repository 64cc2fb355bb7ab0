"""The one exception type that reaches the user as a sentence.

Anything the user can fix (a bad file, a wrong option, a model of the wrong kind) is raised as ``UserError`` with one
sentence that names the file and the problem. The CLI prints that sentence (or a ``{"event": "error"}`` line), exits
with ``EXIT_USER_ERROR`` and leaves no output behind. Every other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import errno
import os

EXIT_USER_ERROR = 2
EXIT_OUT_OF_MEMORY = 3
EXIT_CANCELLED = 130


class UserError(Exception):
    """A problem with the user's input, stated as one sentence."""

    exit_code = EXIT_USER_ERROR


class OutOfMemoryError(UserError):
    """The job did not fit in memory; the message carries a suggestion."""

    exit_code = EXIT_OUT_OF_MEMORY


class CancelledError(UserError):
    """The job was cancelled (a signal, or the reader of its progress went away): "Cancelled.", exit 130."""

    exit_code = EXIT_CANCELLED


def file_error(path: str | os.PathLike, problem: str) -> UserError:
    """``UserError("<path>: <problem>.")`` so every message names its file the same way."""
    problem = problem.rstrip(".")
    return UserError(f"{os.fspath(path)}: {problem}.")


# What went wrong and what to do, per errno, for a file or folder the engine could not write.
_WRITE_PROBLEMS = {
    errno.ENOSPC: "cannot be written: the disk is full; free some space or choose a folder on another disk",
    errno.EROFS: "cannot be written: the file system is read-only; choose a folder on a writable disk",
    errno.EACCES: "cannot be written (permission denied); choose a folder you may write to",
    errno.EPERM: "cannot be written (operation not permitted); choose a folder you may write to",
    errno.EFBIG: "cannot be written: the file would be larger than this disk or your file-size limit allows; "
                 "choose another disk",
    errno.EISDIR: "is a folder; give the name of a file to write",
    errno.ENOTDIR: "cannot be written: part of its path is a file, not a folder; choose another path",
    errno.EEXIST: "already exists and could not be replaced; choose another name",
    errno.ENAMETOOLONG: "cannot be written: the name is too long for this file system; choose a shorter name",
    errno.EIO: "cannot be written: the disk reported an input/output error; check the disk or choose another one",
    errno.ELOOP: "cannot be written: its path is a loop of symbolic links; choose another path",
}
if hasattr(errno, "EDQUOT"):
    _WRITE_PROBLEMS[errno.EDQUOT] = ("cannot be written: your disk quota is used up; free some space or choose "
                                     "another disk")


def write_error(path: str | os.PathLike, exc: OSError) -> UserError:
    """The one sentence for an ``OSError`` met while writing ``path`` (the output the user named, not a temporary
    file): what happened and what to do."""
    problem = _WRITE_PROBLEMS.get(exc.errno)
    if problem is None:
        problem = f"cannot be written ({exc.strerror or exc.__class__.__name__}); choose another folder"
    return file_error(path, problem)


def check_readable_file(path: str | os.PathLike) -> None:
    """Refuse, naming ``path``, anything that is not a non-empty file this process can read.

    Opening the file and reading one byte catches what ``stat`` cannot: missing permission, a folder with a file's
    name, an input/output error of the disk.
    """
    if not os.path.exists(path):
        raise file_error(path, "file does not exist")
    if os.path.isdir(path):
        raise file_error(path, "is a folder, not a file")
    try:
        with open(path, "rb") as handle:
            first_byte = handle.read(1)
    except PermissionError:
        raise file_error(path, "cannot be read (permission denied)") from None
    except OSError as exc:
        raise file_error(path, f"cannot be read ({exc.strerror or exc.__class__.__name__})") from None
    if not first_byte:
        raise file_error(path, "file is empty")
