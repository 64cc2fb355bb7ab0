"""The ``--progress jsonl`` protocol: one JSON object per line on the engine's stdout, read by the Slicer job runner.

Event kinds and the keys each carries::

    {"event": "device", "device": "cpu", "description": "cpu (2 threads)", "precision": "fp32"}
    {"event": "progress", "stage": "augmenter", "step": 10, "total": 200, "loss": 0.41, "eta_s": 95.2,
     "elapsed_s": 5.1, "metrics": {"similarity": 0.3}}
    {"event": "log", "message": "..."}      {"event": "warning", "message": "..."}
    {"event": "result", ...}                 {"event": "error", "message": "one sentence"}

Times are in seconds; ``loss`` and ``eta_s`` may be null (unknown). A ``result`` event carries the verb's own keys
(paths written, metrics) next to ``event``.
"""

from __future__ import annotations

import json
import math
from typing import Any

EVENT = "event"

# Event kinds.
DEVICE = "device"
PROGRESS = "progress"
LOG = "log"
WARNING = "warning"
RESULT = "result"
ERROR = "error"
KINDS = (DEVICE, PROGRESS, LOG, WARNING, RESULT, ERROR)

# Keys of the events above.
MESSAGE = "message"          # log, warning, error: the text
DESCRIPTION = "description"  # device: what a person reads, e.g. "cpu (2 threads)"; the device itself is DEVICE
PRECISION = "precision"      # device: fp32, bf16 or fp16
STAGE = "stage"              # progress: the named loop (e.g. "augmenter", "student")
STEP = "step"                # progress: steps done
TOTAL = "total"              # progress: steps in the stage
LOSS = "loss"                # progress: the current loss (or null)
ETA_S = "eta_s"              # progress: seconds left (or null)
ELAPSED_S = "elapsed_s"      # progress: seconds since the stage started
METRICS = "metrics"          # progress: named numbers of the step


def json_safe(value: Any) -> Any:
    """A JSON-safe copy: NaN and infinities become None (JSON has no NaN), numpy/torch scalars plain numbers."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if hasattr(value, "item") and callable(value.item):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def event_line(kind: str, **fields: Any) -> str:
    """One event as its line of text (without the newline)."""
    return json.dumps(json_safe({EVENT: kind, **fields}))


def parse_event_line(line: str) -> dict[str, Any] | None:
    """The event a line holds, or None for any other line (a library's print, a blank line)."""
    try:
        event = json.loads(line)
    except (json.JSONDecodeError, ValueError):
        return None
    return event if isinstance(event, dict) and EVENT in event else None


def result_fields(event: dict[str, Any]) -> dict[str, Any]:
    """A ``result`` event's own keys (everything but ``event``)."""
    return {key: value for key, value in event.items() if key != EVENT}
