"""Progress events: a tqdm bar for people, one JSON object per line for programs.

With ``mode="jsonl"`` every line on stdout is one event of the protocol in ``distillseg.contract.events`` (what the
Slicer job runner parses). ``mode="tty"`` draws a tqdm bar on stderr and prints log lines; ``mode="none"`` prints
warnings and errors only. Under ``torchrun`` only rank 0 reports.
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

MODES = ("auto", "tty", "jsonl", "none")


class Stage:
    """One named loop with a known number of steps; created by ``Progress.stage``."""

    def __init__(self, progress: "Progress", name: str, total: int, start: int, min_interval_s: float):
        self.progress, self.name, self.total = progress, name, int(total)
        self.start_step, self.step = int(start), int(start)
        self.started = time.monotonic()
        self.min_interval_s = min_interval_s
        self._last_emit = -math.inf
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
        if self.progress.mode == "jsonl" and (final or now - self._last_emit >= self.min_interval_s):
            self._last_emit = now
            eta = self.eta_s()
            self.progress.emit(events.PROGRESS, **{
                events.STAGE: self.name, events.STEP: self.step, events.TOTAL: self.total, events.LOSS: loss,
                events.ETA_S: None if eta is None else round(eta, 1), events.ELAPSED_S: round(now - self.started, 2),
                events.METRICS: metrics})

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> "Stage":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Progress:
    """Where a job's progress, log lines, warnings, result and error go.

    ``mode``: ``auto`` (a bar when stderr is a terminal, else quiet), ``tty``, ``jsonl`` or ``none``.
    """

    def __init__(self, mode: str = "auto", stdout: TextIO | None = None, stderr: TextIO | None = None,
                 min_interval_s: float = 0.5):
        if mode not in MODES:
            raise ValueError(f"progress mode must be one of {MODES}, not {mode!r}")
        self.stdout = stdout or sys.stdout
        self.stderr = stderr or sys.stderr
        if mode == "auto":
            mode = "tty" if getattr(self.stderr, "isatty", lambda: False)() else "none"
        self.mode = mode
        self.min_interval_s = min_interval_s
        self._stdout_gone = False
        # Under torchrun every rank runs the same code; only rank 0 speaks.
        self.enabled = int(os.environ.get("RANK", "0")) == 0

    def emit(self, event: str, **fields: Any) -> None:
        """Write one JSON event line (jsonl mode only). When the reader of stdout has gone (a closed pipe), the job
        has no one to report to: it is cancelled (``BrokenPipeError``, which the CLI ends in "Cancelled.")."""
        if not self.enabled or self.mode != "jsonl" or self._stdout_gone:
            return
        try:
            self.stdout.write(event_line(event, **fields) + "\n")
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
        elif self.mode == "tty" or always:
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
        """The job's final outcome (paths written, metrics)."""
        if self.mode == "jsonl":
            self.emit(events.RESULT, **payload)
        elif self.enabled and self.mode == "tty":
            self.stderr.write(json.dumps(events.json_safe(payload), indent=1) + "\n")

    def stage(self, name: str, total: int, start: int = 0) -> Stage:
        """A loop of ``total`` steps, resuming at ``start``; use as a context manager."""
        return Stage(self, name, total, start, self.min_interval_s)
