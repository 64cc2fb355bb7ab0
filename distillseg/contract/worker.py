"""The ``distillseg worker`` protocol: one long-lived engine process answering requests, one at a time.

The worker reads one JSON request per line on its stdin and answers on its stdout with the same event lines as
``--progress jsonl`` (``distillseg.contract.events``), then one ``done`` line that ends the request::

    request  {"id": "7", "arguments": ["oneshot", "segment", "--model", "M", "--input", "a.nii.gz", "--output", "o"]}
    answer   {"event": "device", ...} {"event": "progress", ...} ... {"event": "result", ...}
             {"event": "done", "id": "7", "exit_code": 0}

``arguments`` is the command line after ``distillseg``, exactly as the command would get it (``--progress`` is
forced to ``jsonl``); ``exit_code`` is the one the command would have exited with (``distillseg.contract.errors``).
Only the verbs in ``WORKER_VERBS`` are served: those that load a model and can reuse it for the next request.
A request the worker cannot run (not JSON, another verb, bad options) gets an ``error`` event with one sentence and
a ``done`` line with exit code 2; the worker goes on. It exits on its own when its stdin closes or after
``--idle-minutes`` without a request, and ends like any engine process on SIGTERM (exit code 130): cancelling a
request ends the worker, and the next request starts a new one.
"""

from __future__ import annotations

import json
from typing import Any

from distillseg.contract.events import EVENT, event_line

# Request keys.
REQUEST_ID = "id"        # any string; echoed by the request's ``done`` line
ARGUMENTS = "arguments"  # list of strings: the command line after ``distillseg``

# The event that ends a request, and its keys (besides ``id``).
DONE = "done"
EXIT_CODE = "exit_code"

WORKER_VERBS = (("oneshot", "segment"), ("lap", "segment"))
DEFAULT_IDLE_MINUTES = 10.0


class RequestError(ValueError):
    """A request line the worker cannot run, as one sentence."""


def request_line(request_id: str, arguments: list[str]) -> str:
    """One request as its line of text (without the newline)."""
    return json.dumps({REQUEST_ID: str(request_id), ARGUMENTS: [str(a) for a in arguments]})


def parse_request(line: str) -> tuple[str, list[str]]:
    """``(id, arguments)`` of a request line; ``RequestError`` naming what is wrong otherwise."""
    try:
        request = json.loads(line)
    except (json.JSONDecodeError, ValueError):
        raise RequestError("A worker request must be one JSON object per line.") from None
    if not isinstance(request, dict):
        raise RequestError("A worker request must be one JSON object per line.")
    arguments = request.get(ARGUMENTS)
    if not isinstance(arguments, list) or not all(isinstance(a, str) for a in arguments):
        raise RequestError(f"A worker request needs '{ARGUMENTS}': the command line after 'distillseg' as a list "
                           "of strings.")
    if tuple(arguments[:2]) not in WORKER_VERBS:
        served = ", ".join(" ".join(verb) for verb in WORKER_VERBS)
        raise RequestError(f"The worker runs only {served}; run 'distillseg {' '.join(arguments[:2])}' as a "
                           "command of its own.")
    return str(request.get(REQUEST_ID, "")), arguments


def request_id_of(line: str) -> str:
    """The ``id`` of a request line, or "" when the line has none (for answering a request that is refused)."""
    try:
        request = json.loads(line)
    except (json.JSONDecodeError, ValueError):
        return ""
    return str(request.get(REQUEST_ID, "")) if isinstance(request, dict) else ""


def done_line(request_id: str, exit_code: int) -> str:
    """The line that ends request ``request_id``."""
    return event_line(DONE, **{REQUEST_ID: request_id, EXIT_CODE: int(exit_code)})


def is_done(event: dict[str, Any]) -> bool:
    return event.get(EVENT) == DONE
