"""Progress events: a tqdm bar or plain lines for people, one JSON object per line for programs.

With ``mode="jsonl"`` every line on stdout is one event of the protocol in ``distillseg.contract.events`` (what the
Slicer job runner parses). ``mode="tty"`` draws a tqdm bar on stderr and prints log lines; ``mode="plain"`` prints a
line of text per stage every ``PLAIN_INTERVAL_S`` instead of a bar (a log file or a pipe: a bar's carriage returns
would fill it with one unreadable line); ``mode="none"`` prints warnings and errors only. ``auto`` is ``tty`` on a
terminal, else ``plain``. People get the result as a few lines (``human_summary``), programs as a ``result`` event.
Under ``torchrun`` only rank 0 reports.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import time
from typing import Any, TextIO

from distillseg.contract import cancel, events
from distillseg.contract.events import event_line

MODES = ("auto", "tty", "plain", "jsonl", "none")
PLAIN_INTERVAL_S = 15.0  # often enough to see a job move, rare enough that an hour's log stays short
HUMAN_MODES = ("tty", "plain")


def _duration(seconds: float) -> str:
    minutes, seconds = divmod(int(round(seconds)), 60)
    return f"{minutes // 60}h {minutes % 60:02d}m" if minutes >= 60 else \
        f"{minutes}m {seconds:02d}s" if minutes else f"{seconds}s"


class Stage:
    """One named loop with a known number of steps; created by ``Progress.stage``."""

    def __init__(self, progress: "Progress", name: str, total: int, start: int, min_interval_s: float):
        self.progress, self.name, self.total = progress, name, int(total)
        self.start_step, self.step = int(start), int(start)
        self.started = time.monotonic()
        self.min_interval_s = min_interval_s
        self._last_emit = -math.inf
        self._last_line = time.monotonic()  # the first plain line comes after one interval, not at step 1
        self._bar = None
        if progress.mode == "tty" and progress.enabled:
            from tqdm import tqdm

            self._bar = tqdm(total=self.total, initial=self.step, desc=name, file=progress.stderr, dynamic_ncols=True)

    def eta_s(self) -> float | None:
        """Seconds left, from this run's own rate (steps restored from a checkpoint do not count as fast steps)."""
        done = self.step - self.start_step
        if done <= 0:
            return None
        rate = (time.monotonic() - self.started) / done
        return rate * max(self.total - self.step, 0)

    def update(self, step: int, loss: float | None = None, **metrics: float) -> None:
        """Report that ``step`` of ``total`` steps are done, with the current loss and any named metrics; a step
        boundary is also where a cancellation whose exception was swallowed on the way is honoured."""
        cancel.raise_if_requested()
        previous, self.step = self.step, int(step)
        if self._bar is not None:
            self._bar.update(self.step - previous)
            postfix = {"loss": f"{loss:.4f}"} if loss is not None else {}
            postfix.update({k: f"{v:.4f}" for k, v in metrics.items() if isinstance(v, (int, float))})
            self._bar.set_postfix(postfix, refresh=False)
        now = time.monotonic()
        final = self.step >= self.total
        if self.progress.mode == "plain" and self.progress.enabled and \
                (final or now - self._last_line >= self.progress.plain_interval_s):
            self._last_line = now
            self.progress._write_stderr(self._plain_line(loss, metrics, now) + "\n")
        if self.progress.mode == "jsonl" and (final or now - self._last_emit >= self.min_interval_s):
            self._last_emit = now
            eta = self.eta_s()
            self.progress.emit(events.PROGRESS, **{
                events.STAGE: self.name, events.STEP: self.step, events.TOTAL: self.total, events.LOSS: loss,
                events.ETA_S: None if eta is None else round(eta, 1), events.ELAPSED_S: round(now - self.started, 2),
                events.METRICS: metrics})

    def _plain_line(self, loss: float | None, metrics: dict, now: float) -> str:
        """``train: 120/1500 (8%), loss 0.4210, 1m 04s elapsed, about 12m 10s left``."""
        parts = [f"{self.name}: {self.step}/{self.total} ({100 * self.step / max(self.total, 1):.0f}%)"]
        if loss is not None:
            parts.append(f"loss {loss:.4f}")
        parts += [f"{name} {value:.4f}" for name, value in metrics.items() if isinstance(value, (int, float))]
        parts.append(f"{_duration(now - self.started)} elapsed")
        eta = self.eta_s()
        if eta is not None and self.step < self.total:
            parts.append(f"about {_duration(eta)} left")
        return ", ".join(parts)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> "Stage":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _shown(value: Any) -> str | None:
    """One value of a result as a person reads it; None for what says nothing on one line."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 1000 else f"{value:.0f}"
    if isinstance(value, (int, str)):
        return str(value)
    if isinstance(value, dict):
        shown = [f"{key} {_shown(item)}" for key, item in value.items() if isinstance(item, (int, float, str))]
        return ", ".join(shown) or None
    if isinstance(value, (list, tuple)):
        items = [item.get("name", item.get("value")) if isinstance(item, dict) else item for item in value]
        names = [str(item) for item in items if item is not None]
        if not names:
            return None
        return ", ".join(names) if len(names) <= 4 else f"{', '.join(names[:3])} … ({len(names)} in all)"
    return None


def human_summary(payload: dict[str, Any]) -> list[str]:
    """A verb's result in a few lines: ``Done.``, then what was written where and the headline figures."""
    lines = ["Done."]
    for key, value in payload.items():
        shown = _shown(value)
        if shown is not None and shown != "":
            lines.append(f"  {key.replace('_', ' ')}: {shown}")
    return lines


class Progress:
    """Where a job's progress, log lines, warnings, result and error go.

    ``mode``: ``auto`` (a bar when stderr is a terminal, else quiet), ``tty``, ``jsonl`` or ``none``.
    """

    def __init__(self, mode: str = "auto", stdout: TextIO | None = None, stderr: TextIO | None = None,
                 min_interval_s: float = 0.5, plain_interval_s: float = PLAIN_INTERVAL_S, json_result: bool = False):
        """``json_result``: the result as one JSON object on stdout (``--json``) instead of the lines for people."""
        if mode not in MODES:
            raise ValueError(f"progress mode must be one of {MODES}, not {mode!r}")
        self.stdout = stdout or sys.stdout
        self.stderr = stderr or sys.stderr
        if mode == "auto":
            mode = "tty" if getattr(self.stderr, "isatty", lambda: False)() else "plain"
        self.mode = mode
        self.min_interval_s, self.plain_interval_s = min_interval_s, plain_interval_s
        self.json_result = json_result
        self._stdout_gone = False
        # Under torchrun every rank runs the same code; only rank 0 speaks.
        self.enabled = int(os.environ.get("RANK", "0")) == 0

    def emit(self, event: str, **fields: Any) -> None:
        """Write one JSON event line (jsonl mode only). When the reader of stdout has gone (a closed pipe), the job
        has no one to report to: it is cancelled (``BrokenPipeError``, which the CLI ends in "Cancelled.")."""
        if self.enabled and self.mode == "jsonl":
            self._write_stdout(event_line(event, **fields) + "\n")

    def _write_stdout(self, text: str) -> None:
        if self._stdout_gone:
            return
        try:
            self.stdout.write(text)
            self.stdout.flush()
        except (BrokenPipeError, ValueError):  # ValueError: the stream was closed
            self._stdout_gone = True
            raise BrokenPipeError(f"the reader of {getattr(self.stdout, 'name', 'stdout')} has gone") from None

    def close(self) -> None:
        """Flush stdout at the end of a job; if its reader has gone, point it at the null device so Python's own
        flush at exit does not print a broken-pipe message."""
        try:
            self.stdout.flush()
        except (BrokenPipeError, ValueError):
            self._stdout_gone = True
        if self._stdout_gone and self.stdout is sys.stdout:
            with contextlib.suppress(OSError, ValueError):
                null = os.open(os.devnull, os.O_WRONLY)
                os.dup2(null, sys.stdout.fileno())
                os.close(null)

    def _write_stderr(self, text: str) -> None:
        with contextlib.suppress(OSError, ValueError):  # a closed stderr cannot be told anything either
            self.stderr.write(text)
            self.stderr.flush()

    def _say(self, prefix: str, message: str, always: bool) -> None:
        if not self.enabled:
            return
        if self.mode == "jsonl":
            self.emit(prefix, **{events.MESSAGE: message})
        elif self.mode in HUMAN_MODES or always:
            self._write_stderr((f"{prefix}: " if prefix != events.LOG else "") + message + "\n")

    def log(self, message: str) -> None:
        self._say(events.LOG, message, always=False)

    def warning(self, message: str) -> None:
        self._say(events.WARNING, message, always=True)

    def error(self, message: str) -> None:
        """The one-sentence error; in jsonl mode also on stderr so a person reading the log sees it."""
        if self.mode == "jsonl" and self.enabled:
            with contextlib.suppress(BrokenPipeError):
                self.emit(events.ERROR, **{events.MESSAGE: message})
        self._write_stderr(f"error: {message}\n")

    def device(self, device: str, description: str, precision: str) -> None:
        """Which device the job really runs on (shown in Slicer as "running on ...")."""
        if self.mode == "jsonl":
            self.emit(events.DEVICE, **{events.DEVICE: device, events.DESCRIPTION: description,
                                        events.PRECISION: precision})
        else:
            self._say(events.LOG, f"running on {description}, precision {precision}", always=False)

    def result(self, **payload: Any) -> None:
        """The job's final outcome (paths written, metrics): a ``result`` event, the JSON object (``--json``) or a
        few lines for people on stdout."""
        if self.mode == "jsonl":
            self.emit(events.RESULT, **payload)
        elif self.enabled and self.json_result:
            self._write_stdout(json.dumps(events.json_safe(payload), indent=1) + "\n")
        elif self.enabled and self.mode in HUMAN_MODES:
            self._write_stdout("".join(line + "\n" for line in human_summary(payload)))

    def stage(self, name: str, total: int, start: int = 0) -> Stage:
        """A loop of ``total`` steps, resuming at ``start``; use as a context manager."""
        return Stage(self, name, total, start, self.min_interval_s)
