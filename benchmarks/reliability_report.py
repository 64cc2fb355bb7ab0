"""The bad-input report: how many bad-input cases were tried and how many were handled cleanly, from a real run.

Runs the bad-input tests with pytest in this process — the engine CLI's (the matrices
``Testing/engine/test_bad_*_matrix.py`` of input files, options, outputs, model folders and image headers, the
cancelled jobs of ``test_signals.py`` and the full disks of ``test_full_disk.py``: the real ``distillseg`` in a
child process per case) and the Slicer glue's (``Testing/mrml/test_bad_input_glue.py``: the module Libs on a
headless slicer-core scene) — and writes ``benchmarks/results/bad_input/report.md`` and ``results.json``. The
fuzzing tests (``Testing/engine/test_fuzz_cli.py``) hold generated cases to the same contract; they are counted
by the test suite, not here.

A case is *handled cleanly* when its test passes: the refusal is one sentence that names the file (or node) and the
problem, with the right exit code (engine: 2, or 3 for out of memory) or error type (glue), no traceback, and
nothing half-written; for the few odd-but-valid inputs (paths with spaces and non-ASCII letters, a tiny scan) the
job must work. A failing test counts as tried but not handled cleanly; a skipped one is listed with its reason.
Each case's sentence is the one its test recorded (``record_property``), with temporary folders shortened to
``<tmp>``.

    .venv/bin/python -m benchmarks.reliability_report
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time

from benchmarks.harness.paths import REPO, RESULTS
from benchmarks.harness.report import about, header, table, write_json, write_text

MATRICES = {"engine CLI": ["Testing/engine/test_bad_input_matrix.py", "Testing/engine/test_bad_option_matrix.py",
                           "Testing/engine/test_bad_output_matrix.py", "Testing/engine/test_bad_model_matrix.py",
                           "Testing/engine/test_bad_image_matrix.py", "Testing/engine/test_signals.py",
                           "Testing/engine/test_full_disk.py"],
            "Slicer glue": ["Testing/mrml/test_bad_input_glue.py"]}
OUT = RESULTS / "bad_input"
_TEMPORARY = re.compile(r"/tmp/pytest-of-[^/]+/pytest-\d+/[^/\s']+")


class CaseCollector:
    """A pytest plugin that keeps each test's outcome and the properties it recorded (group, exit code, sentence)."""

    def __init__(self):
        self.cases: dict[str, dict] = {}

    def pytest_runtest_logreport(self, report):
        case = self.cases.setdefault(report.nodeid, {"nodeid": report.nodeid, "outcome": "passed"})
        case.update({key: value for key, value in report.user_properties})
        if report.failed:
            case["outcome"] = "failed" if report.when == "call" else "error"
        elif report.skipped:
            case["outcome"] = "skipped"
            case["reason"] = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)


def run_matrices(files: list[str]) -> tuple[list[dict], int, float]:
    """Run the test files; returns the collected cases, pytest's exit code and the wall time in seconds."""
    import pytest

    collector = CaseCollector()
    started = time.perf_counter()
    os.chdir(REPO)
    code = pytest.main(["-q", "-p", "no:cacheprovider", *files], plugins=[collector])
    return list(collector.cases.values()), int(code), time.perf_counter() - started


def suite_of(case: dict) -> str:
    return next((suite for suite, files in MATRICES.items() if case["nodeid"].startswith(tuple(files))), "other")


def summarise(cases: list[dict]) -> list[dict]:
    """Per suite and group: cases tried (run, not skipped), handled cleanly (passed), failed, skipped."""
    rows: dict[tuple[str, str], dict] = {}
    for case in cases:
        suite = suite_of(case)
        row = rows.setdefault((suite, case.get("group", "?")), {"suite": suite, "group": case.get("group", "?"),
                                                                 "tried": 0, "clean": 0, "failed": 0, "skipped": 0})
        if case["outcome"] == "skipped":
            row["skipped"] += 1
            continue
        row["tried"] += 1
        row["clean" if case["outcome"] == "passed" else "failed"] += 1
    return list(rows.values())


def _cell(text) -> str:
    return _TEMPORARY.sub("<tmp>", str(text)).replace("|", "\\|").replace("\n", " ")


def _case_id(nodeid: str) -> str:
    match = re.search(r"\[(.*)\]$", nodeid)
    return match.group(1) if match else nodeid


def markdown(cases: list[dict], rows: list[dict], info: dict) -> str:
    tried, clean = sum(r["tried"] for r in rows), sum(r["clean"] for r in rows)
    skipped = sum(r["skipped"] for r in rows)
    lines = header("Bad input: cases tried and handled cleanly", info["command"], info,
                   [f"pytest exit code {info['pytest_exit_code']}, {info['seconds']:.0f} s for both matrices"])
    lines += [f"**{tried} cases tried, {clean} handled cleanly** ({skipped} skipped).", "",
              "*Handled cleanly* = the case's test passed: one sentence naming the file (or Slicer node) and the "
              "problem, exit code 2 (3 for out of memory) or the Lib's own error type, no traceback, nothing "
              "half-written; odd-but-valid inputs (spaces and non-ASCII letters in paths, a tiny scan) must work.",
              "", "## Counts", ""]
    lines += table(["suite", "group", "tried", "handled cleanly", "failed", "skipped"],
                   [[r["suite"], r["group"], r["tried"], r["clean"], r["failed"], r["skipped"]] for r in rows]
                   + [["**all**", "", tried, clean, tried - clean, skipped]])
    lines += ["", "## Every case", "", "The sentence the user sees (the engine's last stderr line, or the Lib's "
              "exception); `(works)` for inputs that must be accepted.", ""]
    body = []
    for case in cases:
        suite = suite_of(case)
        message = case.get("message") or ("(works)" if case.get("exit_code") == 0 else "")
        result = {"passed": "clean", "skipped": f"skipped: {case.get('reason', '')}"}.get(case["outcome"],
                                                                                           f"**{case['outcome']}**")
        body.append([suite, case.get("group", "?"), f"`{_case_id(case['nodeid'])}`", case.get("exit_code", ""),
                     result, _cell(message)])
    lines += table(["suite", "group", "case", "exit", "result", "message"], body)
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    # No options: the parser gives ``--help`` (this docstring) without running the matrices.
    argparse.ArgumentParser(prog="python -m benchmarks.reliability_report", description=__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter).parse_args(argv)
    info = about()
    cases, code, seconds = run_matrices([file for files in MATRICES.values() for file in files])
    if not cases:
        print("no test case ran; nothing written", file=sys.stderr)
        return code or 1
    info.update(pytest_exit_code=code, seconds=round(seconds, 1))
    rows = summarise(cases)
    for case in cases:
        if "message" in case:
            case["message"] = _TEMPORARY.sub("<tmp>", str(case["message"]))
    write_json(OUT / "results.json", {"about": info, "counts": rows, "cases": cases})
    write_text(OUT / "report.md", markdown(cases, rows, info))
    print(f"wrote {OUT / 'report.md'}: {sum(r['tried'] for r in rows)} tried, "
          f"{sum(r['clean'] for r in rows)} handled cleanly")
    return code


if __name__ == "__main__":
    sys.exit(main())
