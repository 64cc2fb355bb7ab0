"""Class-incremental pipeline check of IncrementalLap on GENERATED scenes: ours, finetune, mib, plop and joint.

NOT LAPAROSCOPIC DATA: frames from ``distillseg lap demo-data`` (generated scenes in the DSAD layout). 3 base
structures, then 3 steps of 1 new structure, new patients in every step, held-out test patients (all structures
annotated). It is fast and needs no data set; what the method does on real frames is ``benchmarks.lap_endoscapes``.

Every step runs through the real CLI (``python -m distillseg lap …``); the scores come from ``lap evaluate``.
One command, from the repository root::

    .venv/bin/python -m benchmarks.lap_incremental

writes ``benchmarks/results/lap_incremental/{report.md,results.json,iou_<protocol>.png}``.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

from benchmarks.harness.cli import benchmark_parser, log, report_folder
from benchmarks.harness.figures import pyplot, save
from benchmarks.harness.lap_protocols import PROTOCOLS, build_synthetic_data
from benchmarks.harness.lap_runs import (SMOKE_SETTINGS, curve_rows, evaluate, final_iou_table, fitter, iou_cells,
                                         ious, lap, learn_steps, mean, step_header, train_base, train_options,
                                         worst_old_drop)
from benchmarks.harness.report import invocation, module_command, write_json, write_text

NAME = "lap_incremental"
STRATEGIES = ("ours", "finetune", "mib", "plop")


def run_protocol(name: str, protocol: dict, data: Path, work: Path, settings: dict, threads: int,
                 reuse: bool = False) -> dict:
    """The base step, every strategy's later steps and the joint upper bound on one protocol, with their IoU."""
    steps = protocol["steps"]
    reused: list[str] = []
    fit = fitter(threads, reuse, reused)
    timings: dict[str, float] = {}
    base, timings["base"], base_scores = train_base(protocol, data, work, settings, threads, fit)
    curves = {}
    for strategy in STRATEGIES:
        curves[strategy], timings[strategy] = learn_steps(strategy, base, base_scores, protocol, data, work, settings,
                                                          threads, fit)
    all_classes = [c for s in steps for c in s["classes"]]
    train_patients = [p for s in steps for p in s["patients"]]
    joint = work / "joint"
    timings["joint"] = fit("train", "--data", data, "--classes", ",".join(all_classes), "--out", joint,
                           "--patients", ",".join(train_patients), "--iterations", settings["joint_iterations"],
                           "--diffusion-iterations", 0, *train_options(protocol, settings))
    joint_iou = ious(evaluate(joint, protocol, data, work, threads), all_classes)
    return {"protocol": name, "description": protocol["description"], "steps": steps, "curves": curves,
            "joint": joint_iou, "seconds": timings, "test_patients": protocol["test_patients"], "reused": reused}


def summarize(result: dict) -> dict:
    """Per strategy and step: mean IoU of old / new / all structures, forgetting per step, final checks."""
    steps = result["steps"]
    table = {strategy: curve_rows(steps, curve) for strategy, curve in result["curves"].items()}
    joint_all = mean(result["joint"].values())
    last = len(steps) - 1
    ours = table["ours"]
    worst_drop = worst_old_drop(ours)
    finetune_old = table["finetune"][last]["old"]
    checks = {
        "joint_all": joint_all,
        "ours_all": ours[last]["all"],
        "ours_over_joint": ours[last]["all"] / joint_all,
        "ours_worst_old_drop_points": 100 * worst_drop,
        "ours_keeps_old_within_5_points": worst_drop >= -0.05,
        "ours_at_least_085_joint": ours[last]["all"] >= 0.85 * joint_all,
        "ours_within_10_percent_of_joint": ours[last]["all"] >= 0.9 * joint_all,
        "ours_at_least_mib": ours[last]["all"] >= table["mib"][last]["all"],
        "ours_at_least_plop": ours[last]["all"] >= table["plop"][last]["all"],
        "finetune_old_after_last_step": finetune_old,
        "finetune_collapses_on_old": finetune_old <= 0.5 * table["finetune"][0]["all"],
    }
    return {"table": table, "checks": checks}


def plot(result: dict, summary: dict, path: Path) -> None:
    """Mean IoU of the old, new and all structures after each step, a line per strategy, joint as a star."""
    fig, axes = pyplot().subplots(1, 3, figsize=(13, 3.8), sharey=True)
    steps = list(range(len(result["steps"])))
    colors = {"ours": "tab:red", "finetune": "tab:gray", "mib": "tab:blue", "plop": "tab:green"}
    for axis, group in zip(axes, ("old", "new", "all")):
        for strategy, rows in summary["table"].items():
            axis.plot(steps, [r[group] for r in rows], marker="o", label=strategy, color=colors[strategy])
        if group == "all":
            axis.scatter([steps[-1]], [summary["checks"]["joint_all"]], marker="*", s=160, color="black",
                         label="joint (offline)", zorder=5)
        axis.set_title(f"mean IoU, {group} structures")
        axis.set_xlabel("step")
        axis.set_xticks(steps)
        axis.grid(alpha=0.3)
    axes[0].set_ylabel("IoU")
    axes[-1].legend(loc="lower left", fontsize=8)
    save(fig, path, dpi=110, title=f"{result['description']} — NOT laparoscopic data")


def markdown(results: list[dict], summaries: list[dict], settings: dict, total_s: float, skipped: list[str],
             command: str) -> str:
    """The report: the machine and command, then per protocol the IoU after each step, per structure, the checks."""
    lines = ["# IncrementalLap class-incremental benchmark", "",
             "**Not laparoscopic data**: generated scenes in the DSAD layout (`distillseg lap demo-data`). Real "
             "frames: `benchmarks/results/lap_endoscapes/report.md`.", "",
             f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, CPU only, "
             f"torch threads {settings['threads']}. Total wall time of the command {total_s / 60:.1f} min.", "",
             f"Command: `{command}` (the report can be rebuilt from the raw scores with `--report-only`).", "",
             "Times are wall-clock: they are only clean when nothing else ran on the machine at the same time.", "",
             f"Settings: {json.dumps({k: v for k, v in settings.items() if k != 'threads'})}", ""]
    for note in skipped:
        lines += [f"*Skipped:* {note}", ""]
    for result, summary in zip(results, summaries):
        steps = result["steps"]
        lines += [f"## {result['protocol']}: {result['description']}", "",
                  "Steps: " + "; ".join(f"{i}: +{', '.join(s['classes'])} (patients {', '.join(s['patients'])})"
                                         for i, s in enumerate(steps)) + "; test patients "
                  + ", ".join(result["test_patients"]) + ".", "",
                  "Mean IoU of old / new / all structures after each step (old = learned in earlier steps):", "",
                  *step_header("strategy", len(steps), "time")]
        for strategy, rows in summary["table"].items():
            cells = iou_cells(rows)
            seconds = result["seconds"][strategy] + result["seconds"]["base"]
            lines.append(f"| {strategy} | " + " | ".join(cells) + f" | {seconds / 60:.1f} min |")
        joint_cells = ["" for _ in range(len(steps) - 1)] + [f"– / – / {100 * summary['checks']['joint_all']:.1f}"]
        lines.append("| joint (offline, all data and labels) | " + " | ".join(joint_cells)
                     + f" | {result['seconds']['joint'] / 60:.1f} min |")
        final = {strategy: curve[-1] for strategy, curve in result["curves"].items()}
        lines += ["", "Per-structure IoU after the last step:", "",
                  *final_iou_table({**final, "joint": result["joint"]})]
        if result.get("reused"):
            lines += ["", f"Reused from an earlier run with the same options and strategy settings (`--reuse-models`; "
                      f"scores re-evaluated now, times from the bundles): {', '.join(result['reused'])}."]
        c = summary["checks"]
        lines += ["", "Checks:", "",
                  f"- ours, largest drop of the old structures' mean IoU within a step: "
                  f"{c['ours_worst_old_drop_points']:.1f} points (target: no worse than -5) — "
                  f"{'met' if c['ours_keeps_old_within_5_points'] else 'MISSED'}",
                  f"- ours / joint, mean IoU over all structures after the last step: {c['ours_over_joint']:.3f} "
                  f"(targets 0.85 and 0.90) — {'met' if c['ours_at_least_085_joint'] else 'MISSED'} / "
                  f"{'met' if c['ours_within_10_percent_of_joint'] else 'MISSED'}",
                  f"- ours >= mib: {'yes' if c['ours_at_least_mib'] else 'NO'}; ours >= plop: "
                  f"{'yes' if c['ours_at_least_plop'] else 'NO'}",
                  f"- finetune, old structures after the last step: {100 * c['finetune_old_after_last_step']:.1f} "
                  f"(collapse = at most half its base score: {'yes' if c['finetune_collapses_on_old'] else 'NO'})",
                  "", f"![{result['protocol']}](iou_{result['protocol']}.png)", ""]
    lines += ["Times: `ours`, `finetune`, `mib`, `plop` include the shared base step; `ours` also trains the replay "
              "diffusion model of the base step and of every step but the last (the others do not replay).", ""]
    return "\n".join(lines)


def write_report(out: Path, results: list[dict], used: dict, threads: int, total: float, skipped: list[str],
                 command: str) -> None:
    """``report.md``, ``results.json`` and a plot per protocol in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    summaries = []
    for result in results:
        summaries.append(summarize(result))
        plot(result, summaries[-1], out / f"iou_{result['protocol']}.png")
    write_json(out / "results.json", {"not_laparoscopic_data": True, "command": command, "total_seconds": total,
                                      "settings": used, "skipped": skipped, "results": results,
                                      "summaries": summaries})
    write_text(out / "report.md", markdown(results, summaries, {"threads": threads, **used}, total, skipped, command))


def rebuild_report(args, out: Path) -> int:
    """The report from the raw results of every protocol a previous run left in ``--work``."""
    results, used = [], {}
    for name in args.protocols.split(","):
        raw = args.work / name / "raw_result.json"
        if raw.is_file():
            data = json.loads(raw.read_text())
            results.append(data["result"])
            used[name] = data["settings"]
    previous = json.loads((out / "results.json").read_text()) if (out / "results.json").is_file() else {}
    total = previous.get("total_seconds", sum(sum(r["seconds"].values()) for r in results))
    skipped = [f"{name} protocol: no results (not run, or its run was stopped before it finished; run it with "
               f"`--protocols {name}`)." for name in ("synthetic",) if name not in used]
    write_report(out, results, used, args.threads, total, skipped,
                 previous.get("command", module_command(f"benchmarks.{NAME}")))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = benchmark_parser(__doc__, NAME, "lap_incremental_benchmark", smoke="a few iterations per step",
                              data=None)
    parser.add_argument("--protocols", default="synthetic", choices=["synthetic"])
    parser.add_argument("--reuse-models", action="store_true",
                        help="keep the bundles an earlier run left in --work when their options and strategy settings "
                             "are today's (their times come from the bundles); the report lists them")
    args = parser.parse_args(argv)
    out = report_folder(args, NAME)
    started = time.monotonic()
    if args.report_only:
        return rebuild_report(args, out)
    command = invocation()
    results, used = [], {}
    skipped = [f"{name} protocol: not run by this command (run it with `--protocols {name}`)."
               for name in ("synthetic",) if name not in args.protocols.split(",")]
    for name in args.protocols.split(","):
        protocol = PROTOCOLS[name]
        work = args.work / name
        work.mkdir(parents=True, exist_ok=True)
        data = build_synthetic_data(work, protocol, lambda *a: lap(*a, threads=args.threads))
        settings = protocol["settings"]
        if args.smoke:
            settings = {**settings, **SMOKE_SETTINGS}
        used[name] = settings
        log(f"protocol {name}")
        result = run_protocol(name, protocol, data, work, settings, args.threads, args.reuse_models)
        # Raw scores first, so a report can be rebuilt (--report-only) whatever happens later.
        (work / "raw_result.json").write_text(json.dumps({"result": result, "settings": settings}, indent=1))
        results.append(result)
        print(json.dumps(summarize(result)["checks"], indent=1), file=sys.stderr, flush=True)
        write_report(out, results, used, args.threads, time.monotonic() - started, skipped, command)
    total = time.monotonic() - started
    write_report(out, results, used, args.threads, total, skipped, command)
    print(f"total {total / 60:.1f} min", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
