"""Validation of ``ours``' settings for IncrementalLap on synthetic scenes of ANOTHER seed than the benchmark's.

``benchmarks.lap_incremental`` reports on the test patients of the seed-2025 scenes; a setting of ``ours`` is chosen
here, on the same protocol (3 base structures, then 3 steps of 1 new structure, new patients per step) generated
with another seed (default 7) and scored on that seed's patients 14-16, so the benchmark's test patients never steer
it. NOT LAPAROSCOPIC DATA. Variants compared, each through the real CLI (``lap learn --strategy ours …``):

- ``ours``: the defaults (pseudo-labels of the old structures on the real frames);
- ``ours --no-pseudo-labels``: MiB's unbiased cross-entropy on the real frames instead.

One command, from the repository root::

    .venv/bin/python -m benchmarks.lap_validation

writes ``benchmarks/results/lap_validation/{report.md,results.json}``.
"""

from __future__ import annotations

import time

from benchmarks.harness.cli import benchmark_parser, log, report_folder
from benchmarks.harness.lap_protocols import PROTOCOLS, SYNTHETIC_SEED, build_synthetic_data
from benchmarks.harness.lap_runs import (SMOKE_SETTINGS, curve_rows, final_iou_table, fitter, iou_cells, lap,
                                         learn_steps, step_header, train_base)
from benchmarks.harness.report import invocation, write_json, write_text

NAME = "lap_validation"
VARIANTS = {"ours": (), "ours --no-pseudo-labels": ("--no-pseudo-labels",)}


def markdown(result: dict) -> str:
    """The report: IoU of old / new / all structures after each step and per structure, per variant."""
    lines = ["# IncrementalLap: validation of ours' settings (synthetic scenes, seed "
             f"{result['seed']}; NOT laparoscopic data)", "",
             *(["**SMOKE RUN: a few iterations per step, to check the pipeline; its scores mean nothing.**", ""]
               if result["smoke"] else []),
             f"Command: `{result['command']}`; total {result['total_seconds'] / 60:.1f} min on a 2-core CPU.", "",
             "The benchmark's protocol and settings (`benchmarks.lap_incremental`, synthetic) on scenes generated "
             f"with another seed than its {SYNTHETIC_SEED}; scored on this seed's patients "
             f"{', '.join(result['test_patients'])}. Mean IoU of old / new / all structures after each step:", "",
             *step_header("variant", len(result["rows"]["ours"]), "steps' time")]
    for variant, rows in result["rows"].items():
        lines.append(f"| {variant} | " + " | ".join(iou_cells(rows))
                     + f" | {result['seconds'][variant] / 60:.1f} min |")
    final = {variant: curve[-1] for variant, curve in result["curves"].items()}
    lines += ["", "Per-structure IoU after the last step:", "", *final_iou_table(final)]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = benchmark_parser(__doc__, NAME, "lap_validation", smoke="a few iterations per step", data=None,
                              report_only=False)
    parser.add_argument("--seed", type=int, default=7, help="scene seed (not the benchmark's 2025)")
    parser.add_argument("--reuse-models", action="store_true", help="as benchmarks.lap_incremental's option")
    args = parser.parse_args(argv)
    if args.seed == SYNTHETIC_SEED:
        parser.error(f"--seed {SYNTHETIC_SEED} makes the benchmark's own scenes; validate on another seed")
    out = report_folder(args, NAME)
    started = time.monotonic()
    protocol = PROTOCOLS["synthetic"]
    steps = protocol["steps"]
    settings = {**protocol["settings"], **(SMOKE_SETTINGS if args.smoke else {})}
    args.work.mkdir(parents=True, exist_ok=True)
    data = build_synthetic_data(args.work, protocol, lambda *a: lap(*a, threads=args.threads), seed=args.seed)
    reused: list[str] = []
    fit = fitter(args.threads, args.reuse_models, reused)
    base, _, base_scores = train_base(protocol, data, args.work, settings, args.threads, fit)
    curves, seconds = {}, {}
    for variant, extra in VARIANTS.items():
        curves[variant], seconds[variant] = learn_steps(
            "ours", base, base_scores, protocol, data, args.work, settings, args.threads, fit, extra,
            tag=variant.replace(" --", "_").replace("-", "_"))
    result = {"not_laparoscopic_data": True, "command": invocation(), "seed": args.seed, "smoke": args.smoke,
              "test_patients": protocol["test_patients"], "settings": settings, "curves": curves,
              "rows": {v: curve_rows(steps, c) for v, c in curves.items()}, "seconds": seconds, "reused": reused,
              "total_seconds": time.monotonic() - started}
    write_json(out / "results.json", result)
    write_text(out / "report.md", markdown(result))
    log(f"report in {out / 'report.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
