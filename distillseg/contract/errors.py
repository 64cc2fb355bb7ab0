"""The one exception type that reaches the user as a sentence.

Anything the user can fix (a bad file, a wrong option, a model of the wrong kind) is raised as ``UserError`` with one
sentence that names the file and the problem. The CLI prints that sentence (or a ``{"event": "error"}`` line), exits
with ``EXIT_USER_ERROR`` and leaves no output behind. Every other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

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


def file_error(path: str | os.PathLike, problem: str) -> UserError:
    """``UserError("<path>: <problem>.")`` so every message names its file the same way."""
    problem = problem.rstrip(".")
    return UserError(f"{os.fspath(path)}: {problem}.")


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
