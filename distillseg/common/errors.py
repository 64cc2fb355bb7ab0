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
