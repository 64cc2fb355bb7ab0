"""Run a command as a child process and measure it: wall time, peak memory, and the engine's JSON events.

Peak memory is measured twice, because each way misses something:

- ``peak_rss_mb``: the kernel's own maximum resident set of the child (``wait4`` rusage ``ru_maxrss``; the largest
  of the child and the descendants it waited for). Exact for one process, with one floor: Linux keeps the larger
  of the process's own peak and the *launching* process's peak across fork and exec, so a child started by a
  benchmark that had grown large in-process reports at least that size.
- ``peak_tree_rss_mb``: the sum of the resident sets of the child and all its descendants, sampled every
  ``SAMPLE_S`` seconds with psutil: what ``torchrun`` and its workers hold together (a short spike between two
  samples can be missed). ``stage_peaks_mb`` splits this by the engine stage running at the time (from
  ``--progress jsonl``).

Engine verbs are run as ``python -m distillseg oneshot …`` (or ``lap …``) with ``--progress jsonl``; their events
(keys and kinds from ``distillseg.contract.events``) are kept: ``progress`` events give per-step times
(``step_seconds``) and the ``result`` event's keys are returned as ``result``.
"""

from __future__ import annotations

import os
import shlex
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from distillseg.contract.events import (ELAPSED_S, ERROR, EVENT, MESSAGE, PROGRESS, RESULT, STAGE, STEP,
                                        parse_event_line, result_fields)

from .paths import REPO, shown

SAMPLE_S = 0.1


class CommandFailed(RuntimeError):
    """A measured command exited non-zero; the message carries its command line and the end of its output."""


@dataclass
class Measured:
    """One measured run of a command: its exit code, wall seconds, peak memory and the engine events it printed."""

    command: list[str]
    returncode: int
    seconds: float
    peak_rss_mb: float
    peak_tree_rss_mb: float
    stage_peaks_mb: dict[str, float] = field(default_factory=dict)
    events: list[dict] = field(default_factory=list)
    stderr: str = ""

    def of_kind(self, kind: str) -> list[dict]:
        """The engine events of one kind (``distillseg.contract.events``: RESULT, ERROR, DEVICE, ...), in order."""
        return [e for e in self.events if e.get(EVENT) == kind]

    @property
    def result(self) -> dict:
        """The last ``result`` event's own keys (without ``event``); empty when there was none."""
        found = self.of_kind(RESULT)
        return result_fields(found[-1]) if found else {}

    @property
    def error(self) -> str:
        """The engine's ``error`` sentence, else the last line of stderr ("" when there is none)."""
        found = [e.get(MESSAGE, "") for e in self.of_kind(ERROR)]
        return found[-1] if found else self.stderr.strip().splitlines()[-1] if self.stderr.strip() else ""

    def step_times(self, stage: str, first_step: int = 0) -> list[tuple[int, float]]:
        """(step, elapsed seconds) of every progress event of ``stage`` from ``first_step`` on."""
        return [(e[STEP], e[ELAPSED_S]) for e in self.of_kind(PROGRESS)
                if e.get(STAGE) == stage and ELAPSED_S in e and e[STEP] >= first_step]

    def step_seconds(self, stage: str) -> list[float]:
        """Seconds of each step of ``stage`` after its first (the first carries one-off set-up), from the
        ``elapsed_s`` of consecutive progress events one step apart."""
        points = self.step_times(stage)
        return [round(b[1] - a[1], 3) for a, b in zip(points, points[1:]) if b[0] == a[0] + 1 and a[0] >= 1]

    def median_step_seconds(self, stage: str) -> float | None:
        """Median of ``step_seconds(stage)``; None when no two consecutive steps were reported."""
        steps = self.step_seconds(stage)
        return float(statistics.median(steps)) if steps else None

    def status(self) -> dict:
        """``ok`` (exit code 0) and the engine's ``error`` sentence when it failed, for a report row."""
        return {"ok": self.returncode == 0, "error": self.error if self.returncode else None}

    def summary(self) -> dict:
        """What a report keeps of a run (no raw events)."""
        return {"command": shell_line(self.command), "seconds": round(self.seconds, 2),
                "peak_rss_mb": round(self.peak_rss_mb), "peak_tree_rss_mb": round(self.peak_tree_rss_mb),
                "stage_peaks_mb": {k: round(v) for k, v in self.stage_peaks_mb.items()}}


def shell_line(command: list) -> str:
    """``command`` as one shell line, its paths as a report shows them (``paths.shown``)."""
    return " ".join(shlex.quote(shown(c)) for c in command)


def _tree_rss(process) -> int:
    import psutil

    total = 0
    try:
        members = [process, *process.children(recursive=True)]
    except psutil.Error:
        return 0
    for member in members:
        try:
            total += member.memory_info().rss
        except psutil.Error:
            pass
    return total


def _address_space_limit(limit_bytes: int | None):
    """A ``preexec_fn`` that caps the child's address space, so a run that would exhaust the shared machine's RAM
    fails with an allocation error inside the child instead of waking the kernel's OOM killer."""
    if not limit_bytes:
        return None

    def apply():
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, limit_bytes))

    return apply


def _open_log(command: list[str]):
    """With ``BENCHMARK_LOG_DIR`` set, every child's stdout (timestamped) and the end of its stderr go to a file
    there, to follow a long run while it goes on."""
    folder = os.environ.get("BENCHMARK_LOG_DIR")
    if not folder:
        return None
    Path(folder).mkdir(parents=True, exist_ok=True)
    program = command[2].rsplit(".", 1)[-1] if command[1] == "-m" else Path(command[1]).stem
    verb = next((c for c in command if c in ("train", "segment", "evaluate")), program)
    handle = open(Path(folder) / f"{time.strftime('%H%M%S')}_{verb}.log", "w", encoding="utf-8")
    handle.write(shell_line(command) + "\n")
    return handle


def run_measured(command: list, env: dict | None = None, cwd: Path = REPO, check: bool = True,
                 timeout_s: float | None = None, address_space_limit: int | None = None) -> Measured:
    """Run ``command`` and measure it (see the module docstring). stdout lines that are engine events
    (``parse_event_line``) are kept as events; stderr is kept. ``check``: raise ``CommandFailed`` on a non-zero exit. ``address_space_limit``: bytes
    of virtual memory the child may reserve (RLIMIT_AS), None for no cap."""
    import psutil

    command = [str(c) for c in command]
    started = time.perf_counter()
    # ``python -m …`` in the repository root finds both the engine and ``benchmarks`` there: no PYTHONPATH needed.
    child = subprocess.Popen(command, cwd=cwd, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, bufsize=1,
                             preexec_fn=_address_space_limit(address_space_limit))
    watched = psutil.Process(child.pid)
    events: list[dict] = []
    stage = {"name": "start"}
    peaks: dict[str, float] = {}
    stderr_chunks: list[str] = []

    log = _open_log(command)

    def read_stdout():
        for line in child.stdout:
            if log:
                log.write(f"{time.perf_counter() - started:9.2f} {line}")
                log.flush()
            event = parse_event_line(line.strip())
            if event is None:  # a library's print, not an engine event
                continue
            events.append(event)
            if event[EVENT] == PROGRESS:
                stage["name"] = event.get(STAGE, stage["name"])

    readers = [threading.Thread(target=read_stdout, daemon=True),
               threading.Thread(target=lambda: stderr_chunks.append(child.stderr.read()), daemon=True)]
    for reader in readers:
        reader.start()
    peak_tree = 0
    deadline = None if timeout_s is None else started + timeout_s
    while True:
        waited_pid, status, usage = os.wait4(child.pid, os.WNOHANG)
        if waited_pid:
            break
        rss = _tree_rss(watched)
        peak_tree = max(peak_tree, rss)
        peaks[stage["name"]] = max(peaks.get(stage["name"], 0.0), rss / 2**20)
        if deadline is not None and time.perf_counter() > deadline:
            child.kill()
        time.sleep(SAMPLE_S)
    seconds = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    for reader in readers:
        reader.join()
    if log:
        log.write("".join(stderr_chunks)[-5000:])
        log.close()
    # ru_maxrss is in kilobytes on Linux.
    maxrss = usage.ru_maxrss / 1024 if sys.platform != "darwin" else usage.ru_maxrss / 2**20
    measured = Measured(command, child.returncode, seconds, maxrss, peak_tree / 2**20, peaks, events,
                        "".join(stderr_chunks))
    if check and child.returncode != 0:
        raise CommandFailed(f"{shell_line(command)} exited with {child.returncode}: {measured.error}\n"
                            f"{measured.stderr[-3000:]}")
    return measured


def distillseg(verb: str, *args, threads: int = 2, device: str = "cpu", check: bool = True, env: dict | None = None,
               launcher: list | None = None, address_space_limit: int | None = None,
               method: str = "oneshot") -> Measured:
    """``python -m distillseg METHOD VERB ARGS --progress jsonl --device D --threads T``, measured.

    ``launcher``: a prefix that replaces ``python`` (e.g. ``[torchrun, --standalone, --nproc_per_node=2]``)."""
    prefix = launcher or [sys.executable]
    command = [*prefix, "-m", "distillseg", method, verb, *[str(a) for a in args],
               "--progress", "jsonl", "--device", device, "--threads", str(threads)]
    return run_measured(command, env=env, check=check, address_space_limit=address_space_limit)
