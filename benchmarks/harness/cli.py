"""The options and start-up every benchmark entry script shares.

Every script takes ``--work`` (a scratch folder for data copies, models and the raw result), ``--out`` (the report
folder: ``benchmarks/results/<name>`` by default, ``WORK/report`` for a smoke run so that a pipeline check never
overwrites a committed report) and ``--threads``; most take ``--data`` (the shared data folder next to the
checkout), ``--smoke`` and ``--report-only`` (rebuild the report from ``WORK/raw_result.json`` without rerunning).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Callable

from .paths import RESULTS, SHARED_DATA, shown
from .report import write_json


def benchmark_parser(doc: str, name: str, work: str, smoke: str, data: str | None = "the shared data folder",
                     report_only: bool = True) -> argparse.ArgumentParser:
    """A parser with ``--data`` (unless ``data`` is None; its help otherwise), ``--work`` (default
    ``/tmp/<work>``), ``--out``, ``--threads``, ``--smoke`` (``smoke``: what it makes tiny) and, with
    ``report_only``, ``--report-only``; ``doc``, the script's docstring, is its description."""
    parser = argparse.ArgumentParser(prog=f"python -m benchmarks.{name}", description=doc,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    if data is not None:
        parser.add_argument("--data", type=Path, default=SHARED_DATA, help=f"{data} (default: ../shared/data)")
    parser.add_argument("--work", type=Path, default=Path("/tmp") / work,
                        help=f"scratch folder: data copies, models, raw results (default: /tmp/{work})")
    parser.add_argument("--out", type=Path, default=None,
                        help=f"report folder (default: benchmarks/results/{name}; with --smoke: WORK/report)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads of every measured process")
    parser.add_argument("--smoke", action="store_true", help=f"{smoke}, to check the pipeline (scores mean nothing)")
    if report_only:
        parser.add_argument("--report-only", action="store_true",
                            help="rebuild the report from the raw results a previous run left in WORK")
    return parser


class _DistinctSeeds(argparse.Action):
    """Refuses a seed given twice: paired statistics over ``--seeds 0 0 0`` would count one training as three and
    call a spread of zero."""

    def __call__(self, parser, namespace, values, option_string=None):
        repeated = sorted({v for v in values if values.count(v) > 1})
        if repeated:
            parser.error(f"{option_string}: each seed once (repeated: {' '.join(map(str, repeated))}).")
        setattr(namespace, self.dest, values)


def add_seeds_option(parser: argparse.ArgumentParser, default: list[int] | None, help: str, name: str = "--seeds",
                     nargs: str = "+") -> None:
    """A list of distinct seeds, each a whole number ≥ 0."""
    from distillseg.common.option_types import whole_number

    parser.add_argument(name, type=whole_number(0), nargs=nargs, default=default, action=_DistinctSeeds, help=help)


def report_folder(args: argparse.Namespace, name: str) -> Path:
    """Where the report goes: ``--out``, else ``WORK/report`` for a smoke run, else ``benchmarks/results/<name>``.
    Every script asks before any work, so an ``--out`` that is a file (a user's) is refused then, not after hours
    of computing when the report is written."""
    out = args.out or (args.work / "report" if args.smoke else RESULTS / name)
    if out.exists() and not out.is_dir():
        raise SystemExit(f"--out {shown(out)}: is a file, not a folder for the report; choose a folder.")
    return out


def raw_result(args: argparse.Namespace) -> Path:
    """The raw result a run leaves in its scratch folder, from which ``--report-only`` rebuilds the report."""
    return args.work / "raw_result.json"


def read_raw_result(args: argparse.Namespace) -> dict:
    """The raw result of an earlier run, for ``--report-only``."""
    return json.loads(raw_result(args).read_text())


def rebuilt_only(args: argparse.Namespace, out: Path, write_report: Callable[[dict, Path], None]) -> bool:
    """With ``--report-only``: the report in ``out`` rebuilt from the earlier run's raw result, and True (the script
    has nothing more to do); else False."""
    if args.report_only:
        write_report(read_raw_result(args), out)
    return args.report_only


def save_run(result: dict, started: float, args: argparse.Namespace, write_report: Callable[[dict], None]) -> None:
    """Record the run's wall time since ``started`` (``time.monotonic``), keep its raw result in the scratch folder
    first (so ``--report-only`` can rebuild whatever happens next), then write the report."""
    result["total_seconds"] = time.monotonic() - started
    write_json(raw_result(args), result)
    write_report(result)


def log(message: str) -> None:
    """A timestamped progress line on stderr (stdout stays free for a child's output)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)
