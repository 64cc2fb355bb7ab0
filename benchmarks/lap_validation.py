"""Validation of ``ours``' settings for IncrementalLap on synthetic scenes of ANOTHER seed than the benchmark's.

``lap_incremental.py`` reports on the test patients of the seed-2025 scenes; a setting of ``ours`` is chosen here,
on the same protocol (3 base structures, then 3 steps of 1 new structure, new patients per step) generated with
another seed (default 7) and scored on that seed's patients 14-16, so the benchmark's test patients never steer it.
NOT LAPAROSCOPIC DATA. Variants compared, each through the real CLI (``lap learn --strategy ours …``):

- ``ours``: the defaults (pseudo-labels of the old structures on the real frames);
- ``ours --no-pseudo-labels``: MiB's unbiased cross-entropy on the real frames instead.

One command::

    flock /work/heavy.lock .venv/bin/python benchmarks/lap_validation.py

writes ``benchmarks/results/lap_validation.{md,json}``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from lap_incremental import (REPO, SMOKE_SETTINGS, curve_rows, lap, learn_steps, train_base,  # noqa: E402
                             train_or_reuse)
from lap_protocols import PROTOCOLS, SYNTHETIC_SEED, build_synthetic_data  # noqa: E402

VARIANTS = {"ours": (), "ours --no-pseudo-labels": ("--no-pseudo-labels",)}


def markdown(result: dict) -> str:
    lines = ["# IncrementalLap: validation of ours' settings (synthetic scenes, seed "
             f"{result['seed']}; NOT laparoscopic data)", "",
             *(["**SMOKE RUN: a few iterations per step, to check the pipeline; its scores mean nothing.**", ""]
               if result["smoke"] else []),
             f"Command: `{result['command']}`; total {result['total_seconds'] / 60:.1f} min on a 2-core CPU.", "",
             "The benchmark's protocol and settings (`lap_incremental.py`, synthetic) on scenes generated with another "
             f"seed than its {SYNTHETIC_SEED}; scored on this seed's patients "
             f"{', '.join(result['test_patients'])}. Mean IoU of old / new / all structures after each step:", "",
             "| variant | " + " | ".join(f"step {r['step']} old / new / all" for r in result["rows"]["ours"])
             + " | steps' time |", "|---|" + "---|" * (len(result["rows"]["ours"]) + 1)]
    for variant, rows in result["rows"].items():
        cells = [" / ".join("–" if r[g] != r[g] else f"{100 * r[g]:.1f}" for g in ("old", "new", "all")) for r in rows]
        lines.append(f"| {variant} | " + " | ".join(cells) + f" | {result['seconds'][variant] / 60:.1f} min |")
    lines += ["", "Per-structure IoU after the last step:", "", "| structure | " + " | ".join(result["curves"]) + " |",
              "|---|" + "---|" * len(result["curves"])]
    for name in result["curves"]["ours"][-1]:
        lines.append(f"| {name} | " + " | ".join(f"{100 * c[-1][name]:.1f}" for c in result["curves"].values()) + " |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=7, help="scene seed (not the benchmark's 2025)")
    parser.add_argument("--out", default=REPO / "benchmarks" / "results", type=Path)
    parser.add_argument("--work", default=Path("/tmp/lap_validation"), type=Path)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--reuse-models", action="store_true", help="as lap_incremental.py's option")
    parser.add_argument("--smoke", action="store_true",
                        help="a few iterations per step, to check the pipeline (its scores mean nothing)")
    args = parser.parse_args()
    if args.seed == SYNTHETIC_SEED:
        parser.error(f"--seed {SYNTHETIC_SEED} makes the benchmark's own scenes; validate on another seed")
    started = time.monotonic()
    protocol = PROTOCOLS["synthetic"]
    steps = protocol["steps"]
    settings = {**protocol["settings"], **(SMOKE_SETTINGS if args.smoke else {})}
    args.work.mkdir(parents=True, exist_ok=True)
    data = build_synthetic_data(args.work, protocol, lambda *a: lap(*a, threads=args.threads), seed=args.seed)
    reused: list[str] = []
    fit = lambda *a: train_or_reuse(*a, threads=args.threads, reuse=args.reuse_models, reused=reused)  # noqa: E731
    base, _, base_scores = train_base(protocol, data, args.work, settings, args.threads, fit)
    curves, seconds = {}, {}
    for variant, extra in VARIANTS.items():
        curves[variant], seconds[variant] = learn_steps(
            "ours", base, base_scores, protocol, data, args.work, settings, args.threads, fit, extra,
            tag=variant.replace(" --", "_").replace("-", "_"))
    command = " ".join(["flock /work/heavy.lock .venv/bin/python benchmarks/lap_validation.py", *sys.argv[1:]])
    result = {"not_laparoscopic_data": True, "command": command, "seed": args.seed, "smoke": args.smoke,
              "test_patients": protocol["test_patients"], "settings": settings, "curves": curves,
              "rows": {v: curve_rows(steps, c) for v, c in curves.items()}, "seconds": seconds, "reused": reused,
              "total_seconds": time.monotonic() - started}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "lap_validation.json").write_text(json.dumps(result, indent=1) + "\n")
    (args.out / "lap_validation.md").write_text(markdown(result))
    print(f"report in {args.out / 'lap_validation.md'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
