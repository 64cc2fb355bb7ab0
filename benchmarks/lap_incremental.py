"""Class-incremental benchmark of IncrementalLap: strategies ours, finetune, mib, plop and joint in one run.

NEITHER PROTOCOL IS LAPAROSCOPIC DATA (no laparoscopic frames with masks can be obtained here):

1. ``synthetic``: frames from ``distillseg lap demo-data`` (generated scenes in the DSAD layout). 3 base structures,
   then 3 steps of 1 new structure, new patients in every step, held-out test patients (all structures annotated).
2. ``proxy``: real pixels — 2.5D slices (three neighbouring slices as R, G, B) of the labelled brain MRIs and the
   spine CT in ../shared/data, turned into the same protocol: 3 brain structures, then vertebrae, thalamus and
   cerebellum; every step uses other slices ("patients"); the test set is the second brain (another subject) and
   held-out spine slices (the same subject: only one spine is labelled). Skipped with a message when absent.

Every step runs through the real CLI (``python -m distillseg lap …``); the scores come from ``lap evaluate``.
One command::

    flock /work/heavy.lock .venv/bin/python benchmarks/lap_incremental.py

writes ``benchmarks/results/lap_incremental.{md,json}`` and ``lap_incremental_<protocol>.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from lap_protocols import PROTOCOLS, build_proxy_data, build_synthetic_data  # noqa: E402

STRATEGIES = ("ours", "finetune", "mib", "plop")
COMMAND = "flock /work/heavy.lock .venv/bin/python benchmarks/lap_incremental.py"
SMOKE_SETTINGS = {"base_iterations": 3, "step_iterations": 2, "joint_iterations": 3, "diffusion_iterations": 2}


def lap(*args, threads: int) -> float:
    """Run one ``distillseg lap`` verb; returns its wall time in seconds."""
    command = [sys.executable, "-m", "distillseg", "lap", *[str(a) for a in args]]
    if args[0] != "demo-data":
        command += ["--progress", "none", "--device", "cpu", "--threads", str(threads)]
    started = time.monotonic()
    done = subprocess.run(command, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True,
                          text=True)
    if done.returncode:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return time.monotonic() - started


def _option_values(args: tuple) -> dict[str, list[str]]:
    """``("--lr", 0.001, "--size", 128, 160)`` -> ``{"lr": ["0.001"], "size": ["128", "160"]}``."""
    values: dict[str, list[str]] = {}
    for arg in args:
        if isinstance(arg, str) and arg.startswith("--"):
            key = values.setdefault(arg[2:].replace("-", "_"), [])
        else:
            key.append(str(arg))
    return values


def _same_strategy(stored: dict) -> bool:
    """An earlier bundle's strategy settings are today's (a setting added since then must be at its default)."""
    from dataclasses import fields

    from distillseg.lap.strategies import STRATEGIES, Strategy

    current = STRATEGIES[stored["name"]].to_json()
    defaults = {f.name: f.default for f in fields(Strategy)}
    return all(stored.get(k, defaults[k]) == v for k, v in current.items())


def reusable_seconds(verb: str, args: tuple) -> float | None:
    """Seconds of an earlier run's ``train``/``learn`` whose bundle (``--out``) was made with these options and the
    strategy's current settings, else None: ``--reuse-models`` then keeps it instead of training again."""
    wanted = _option_values(args)
    manifest = Path(wanted["out"][0]) / "manifest.json"
    if not manifest.is_file():
        return None
    last = json.loads(manifest.read_text())["history"][-1]
    options = last["options"]
    same = options.get("verb") == verb and all(
        [str(v) for v in (options.get(k) if isinstance(options.get(k), list) else [options.get(k)])] == values
        for k, values in wanted.items())
    if verb == "learn":
        same = same and _same_strategy(last["strategy_settings"])
    return float(last["seconds"]) if same else None


def train_or_reuse(verb: str, *args, threads: int, reuse: bool, reused: list[str]) -> float:
    """``lap train``/``lap learn`` (wall seconds), or with ``reuse`` an earlier run's equal bundle (its seconds)."""
    seconds = reusable_seconds(verb, args) if reuse else None
    if seconds is None:
        return lap(verb, *args, threads=threads)
    reused.append(Path(_option_values(args)["out"][0]).name)
    print(f"[{time.strftime('%H:%M:%S')}] reusing {reused[-1]} (same options and strategy settings)",
          file=sys.stderr, flush=True)
    return seconds


def evaluate(model: Path, protocol: dict, data: Path, work: Path, threads: int) -> dict:
    report = work / f"{model.name}.eval.json"
    lap("evaluate", "--model", model, "--data", data, "--source", protocol["eval_source"], "--patients",
        ",".join(protocol["test_patients"]), "--report", report, threads=threads)
    return json.loads(report.read_text())


def ious(report: dict, names: list[str]) -> dict[str, float]:
    return {n: report["per_class"][n]["iou"] for n in names}


def _train_options(protocol: dict, settings: dict) -> list:
    return ["--size", *protocol["size"], "--batch-size", settings["batch_size"], "--seed", 0]


def train_base(protocol: dict, data: Path, work: Path, settings: dict, threads: int, fit) -> tuple[Path, float, dict]:
    """``lap train`` of the first step's structures into ``<work>/base``; returns the bundle, its seconds and the IoU
    of those structures on the test patients."""
    first, base = protocol["steps"][0], work / "base"
    seconds = fit("train", "--data", data, "--classes", ",".join(first["classes"]), "--out", base,
                  "--patients", ",".join(first["patients"]), "--iterations", settings["base_iterations"],
                  "--diffusion-iterations", settings["diffusion_iterations"], *_train_options(protocol, settings))
    return base, seconds, ious(evaluate(base, protocol, data, work, threads), first["classes"])


def learn_steps(strategy: str, base: Path, base_scores: dict, protocol: dict, data: Path, work: Path, settings: dict,
                threads: int, fit, extra: tuple = (), tag: str | None = None) -> tuple[list[dict], float]:
    """``lap learn --strategy STRATEGY EXTRA…`` for every step after the base into ``<tag>_step<k>``; returns the IoU
    of the structures seen so far after each step (the base's first) and the seconds of all steps."""
    steps, previous, seconds, curve = protocol["steps"], base, 0.0, [base_scores]
    for index, step in enumerate(steps[1:], 1):
        out = work / f"{tag or strategy}_step{index}"
        # Only ``ours`` replays, and the last step's diffusion model would serve a step that never comes.
        diffusion = settings["diffusion_iterations"] if strategy == "ours" and index < len(steps) - 1 else 0
        seconds += fit("learn", "--model", previous, "--data", data, "--new-classes", ",".join(step["classes"]),
                       "--out", out, "--patients", ",".join(step["patients"]), "--strategy", strategy,
                       "--iterations", settings["step_iterations"], "--diffusion-iterations", diffusion,
                       "--batch-size", settings["batch_size"], "--lr", settings["step_lr"], "--seed", index, *extra)
        seen = [c for s in steps[: index + 1] for c in s["classes"]]
        curve.append(ious(evaluate(out, protocol, data, work, threads), seen))
        previous = out
    return curve, seconds


def run_protocol(name: str, protocol: dict, data: Path, work: Path, settings: dict, threads: int,
                 reuse: bool = False) -> dict:
    steps = protocol["steps"]
    reused: list[str] = []
    fit = lambda *a: train_or_reuse(*a, threads=threads, reuse=reuse, reused=reused)  # noqa: E731
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
                           "--diffusion-iterations", 0, *_train_options(protocol, settings))
    joint_iou = ious(evaluate(joint, protocol, data, work, threads), all_classes)
    return {"protocol": name, "description": protocol["description"], "steps": steps, "curves": curves,
            "joint": joint_iou, "seconds": timings, "test_patients": protocol["test_patients"], "reused": reused}


def _mean(values) -> float:
    values = [v for v in values if v == v]
    return sum(values) / len(values) if values else float("nan")


def curve_rows(steps: list[dict], curve: list[dict]) -> list[dict]:
    """Per step: mean IoU of the old / new / all structures, and of the old ones before the step."""
    rows = []
    for index, scores in enumerate(curve):
        old = [c for s in steps[:index] for c in s["classes"]]
        new = steps[index]["classes"]
        before = (_mean(curve[index - 1][c] for c in old) if index else float("nan"))
        rows.append({"step": index, "old": _mean(scores[c] for c in old) if old else float("nan"),
                     "new": _mean(scores[c] for c in new), "all": _mean(scores.values()), "old_before_step": before})
    return rows


def summarize(result: dict) -> dict:
    """Per strategy and step: mean IoU of old / new / all structures, forgetting per step, final checks."""
    steps = result["steps"]
    table = {strategy: curve_rows(steps, curve) for strategy, curve in result["curves"].items()}
    joint_all = _mean(result["joint"].values())
    last = len(steps) - 1
    ours = table["ours"]
    worst_drop = min(r["old"] - r["old_before_step"] for r in ours[1:])
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
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), sharey=True)
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
    fig.suptitle(f"{result['description']} — NOT laparoscopic data", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def markdown(results: list[dict], summaries: list[dict], settings: dict, total_s: float, skipped: list[str],
             command: str) -> str:
    lines = ["# IncrementalLap class-incremental benchmark", "",
             "**Neither protocol is laparoscopic data.** `synthetic` = generated scenes in the DSAD layout "
             "(`distillseg lap demo-data`); `proxy` = 2.5D slices of real brain MRI and spine CT.", "",
             f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, CPU only, "
             f"torch threads {settings['threads']}. Total wall time of the command {total_s / 60:.1f} min.", "",
             f"Command: `{command}` (the report can be rebuilt from the raw scores with `--report-only`).", "",
             "Times are wall-clock under the shared lock; other jobs that did not take the lock shared the 2 cores "
             "during parts of this run, so read them as upper bounds.", "",
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
                  "| strategy | " + " | ".join(f"step {i} old / new / all" for i in range(len(steps))) + " | time |",
                  "|---|" + "---|" * (len(steps) + 1)]
        for strategy, rows in summary["table"].items():
            cells = [" / ".join("–" if r[g] != r[g] else f"{100 * r[g]:.1f}" for g in ("old", "new", "all"))
                     for r in rows]
            seconds = result["seconds"][strategy] + result["seconds"]["base"]
            lines.append(f"| {strategy} | " + " | ".join(cells) + f" | {seconds / 60:.1f} min |")
        joint_cells = ["" for _ in range(len(steps) - 1)] + [f"– / – / {100 * summary['checks']['joint_all']:.1f}"]
        lines.append("| joint (offline, all data and labels) | " + " | ".join(joint_cells)
                     + f" | {result['seconds']['joint'] / 60:.1f} min |")
        final = result["curves"]
        lines += ["", "Per-structure IoU after the last step:", "",
                  "| structure | " + " | ".join([*final, "joint"]) + " |", "|---|" + "---|" * (len(final) + 1)]
        for name in result["joint"]:
            lines.append(f"| {name} | " + " | ".join(f"{100 * final[s][-1][name]:.1f}" for s in final)
                         + f" | {100 * result['joint'][name]:.1f} |")
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
                  "", f"![{result['protocol']}](lap_incremental_{result['protocol']}.png)", ""]
    lines += ["Times: `ours`, `finetune`, `mib`, `plop` include the shared base step; `ours` also trains the replay "
              "diffusion model of the base step and of every step but the last (the others do not replay).", ""]
    return "\n".join(lines)


def write_report(out: Path, results: list[dict], used: dict, threads: int, total: float, skipped: list[str],
                 command: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    summaries = []
    for result in results:
        summaries.append(summarize(result))
        plot(result, summaries[-1], out / f"lap_incremental_{result['protocol']}.png")
    (out / "lap_incremental.json").write_text(json.dumps(
        {"not_laparoscopic_data": True, "command": command, "total_seconds": total, "settings": used,
         "skipped": skipped,
         "results": results, "summaries": summaries}, indent=1) + "\n")
    (out / "lap_incremental.md").write_text(markdown(results, summaries, {"threads": threads, **used}, total,
                                                     skipped, command))


def rebuild_report(args) -> int:
    results, used = [], {}
    for name in args.protocols.split(","):
        raw = args.work / name / "raw_result.json"
        if raw.is_file():
            data = json.loads(raw.read_text())
            results.append(data["result"])
            used[name] = data["settings"]
    previous = json.loads((args.out / "lap_incremental.json").read_text()) \
        if (args.out / "lap_incremental.json").is_file() else {}
    total = previous.get("total_seconds", sum(sum(r["seconds"].values()) for r in results))
    skipped = [f"{name} protocol: no results (not run, or its run was stopped before it finished; run it with "
               f"`--protocols {name}`)." for name in PROTOCOLS if name not in used]
    write_report(args.out, results, used, args.threads, total, skipped, previous.get("command", COMMAND))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=REPO / "benchmarks" / "results", type=Path)
    parser.add_argument("--work", default=Path("/tmp/lap_incremental_benchmark"), type=Path,
                        help="scratch folder for data and models (default: /tmp/lap_incremental_benchmark)")
    parser.add_argument("--protocols", default="synthetic,proxy")
    parser.add_argument("--shared-data", default=REPO.parent / "shared" / "data", type=Path)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--smoke", action="store_true",
                        help="a few iterations per step, to check the pipeline (its scores mean nothing)")
    parser.add_argument("--reuse-models", action="store_true",
                        help="keep the bundles an earlier run left in --work when their options and strategy settings "
                             "are today's (their times come from the bundles); the report lists them")
    parser.add_argument("--report-only", action="store_true",
                        help="rebuild the report from the raw results a previous run left in --work")
    args = parser.parse_args()
    started = time.monotonic()
    if args.report_only:
        return rebuild_report(args)
    command = " ".join([COMMAND, *sys.argv[1:]])
    results, used = [], {}
    skipped = [f"{name} protocol: not run by this command (run it with `--protocols {name}`)."
               for name in PROTOCOLS if name not in args.protocols.split(",")]
    for name in args.protocols.split(","):
        protocol = PROTOCOLS[name]
        work = args.work / name
        work.mkdir(parents=True, exist_ok=True)
        if name == "synthetic":
            data = build_synthetic_data(work, protocol, lambda *a: lap(*a, threads=args.threads))
        else:
            data = build_proxy_data(work, args.shared_data)
            if data is None:
                skipped.append(f"proxy protocol: {args.shared_data} is absent.")
                print(skipped[-1], file=sys.stderr)
                continue
        settings = protocol["settings"]
        if args.smoke:
            settings = {**settings, **SMOKE_SETTINGS}
        used[name] = settings
        print(f"[{time.strftime('%H:%M:%S')}] protocol {name}", file=sys.stderr, flush=True)
        result = run_protocol(name, protocol, data, work, settings, args.threads, args.reuse_models)
        # Raw scores first, so a report can be rebuilt (--report-only) whatever happens later.
        (work / "raw_result.json").write_text(json.dumps({"result": result, "settings": settings}, indent=1))
        results.append(result)
        print(json.dumps(summarize(result)["checks"], indent=1), file=sys.stderr, flush=True)
        write_report(args.out, results, used, args.threads, time.monotonic() - started, skipped, command)
    total = time.monotonic() - started
    write_report(args.out, results, used, args.threads, total, skipped, command)
    print(f"total {total / 60:.1f} min", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
