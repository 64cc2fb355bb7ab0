"""``report.md``, ``results.json`` and the learning-curve figure of ``benchmarks.lap_endoscapes`` from its raw result.

The checks are the targets of the real-frame benchmark: the joint model learns every structure and reaches 0.40
mean IoU; ours reaches 0.90 x joint after the last step, its old structures lose at most 5 IoU points in any step,
it is ahead of mib and plop run with the same Dice term; finetune forgets.
"""

from __future__ import annotations

import os
import platform
import shutil
from pathlib import Path

from benchmarks.harness.figures import pyplot, save
from benchmarks.harness.lap_replay_evidence import CAPTION
from benchmarks.harness.lap_dev_steps import dev_steps_lines, last_step_measures, paired_call, seed_table_lines
from benchmarks.harness.lap_runs import (curve_rows, final_iou_table, iou_cells, mean, spread, step_header,
                                         worst_old_drop)
from benchmarks.harness.report import write_json, write_text

CONTEXT = ("Published figures for context: the data set's official benchmark (Murali et al. 2023, "
           "github.com/CAMMA-public/Endoscapes) reports instance segmentation on the test videos, not semantic IoU "
           "on the val videos, and the works that report semantic segmentation on Endoscapes (Alapatt et al. 2021, "
           "TCNN) used Endoscapes-Seg201, a larger private set of which Seg50 is the public part (the release's "
           "README says so). No published number is directly comparable with a network trained from scratch on 2 CPU "
           "cores in minutes and scored on the val videos; the joint model (the same network and budget, all labels "
           "at once) is the reference here.")
# The strategies ours must be ahead of, each run with the same new-class Dice term as ours (the fair test).
RIVALS = ("mib + Dice", "plop + Dice")
ATTRIBUTION = ("Data: Endoscapes-Seg50 train and val videos (Murali et al., \"The Endoscapes Dataset for Surgical "
               "Scene Segmentation, Object Detection, and Critical View of Safety Assessment\", arXiv:2312.12429; "
               "CAMMA, Strasbourg), licence CC BY-NC-SA 4.0. Figures showing its frames carry this attribution; "
               "no frame is stored in the repository.")


def summarize(result: dict) -> dict:
    """Per variant: old / new / all mean IoU after each step; the checks of the targets."""
    steps = result["steps"]
    table = {v: curve_rows(steps, c) for v, c in result["curves"].items()}
    last = len(steps) - 1
    joint_all = mean(result["joint"].values())
    checks = {"joint_all": joint_all, "joint_learns_every_structure": all(v > 0 for v in result["joint"].values()),
              "joint_at_least_040": joint_all >= 0.40}
    if "ours" in table:
        ours = table["ours"]
        worst = worst_old_drop(ours)
        checks.update({"ours_all": ours[last]["all"], "ours_over_joint": ours[last]["all"] / joint_all,
                       "ours_at_least_090_joint": ours[last]["all"] >= 0.9 * joint_all,
                       "ours_worst_old_drop_points": 100 * worst, "ours_keeps_old_within_5_points": worst >= -0.05})
        for rival in RIVALS:
            if rival in table:
                checks[f"ours_minus_{rival}"] = ours[last]["all"] - table[rival][last]["all"]
    seeded = result.get("seeded")
    if seeded and "ours" in seeded["curves"]:
        runs = [last_step_measures(steps, c)["all"] for c in seeded["curves"]["ours"].values()]
        checks["ours_over_joint_seeds"] = [r / joint_all for r in runs]
        for rival in RIVALS:
            if rival in seeded["curves"]:
                deltas, call = paired_call(seeded, "ours", rival)
                checks[f"ours_minus_{rival}_seeds"] = {"deltas": deltas, "call": call}
    if "finetune" in table:
        checks["finetune_old_after_last_step"] = table["finetune"][last]["old"]
        checks["finetune_forgets"] = table["finetune"][last]["old"] <= 0.5 * table["finetune"][0]["all"]
    return {"table": table, "checks": checks}


def _yes(flag: bool) -> str:
    return "met" if flag else "MISSED"


def _dev_lines(dev: dict) -> list[str]:
    rows = dev["rows"]
    names = list(next(iter(next(iter(rows.values()))["seeds"].values()))["iou"])
    lines = ["## How the segmenter's settings were chosen (`--dev`, no val video used)", "",
             f"Joint model, {dev['iterations']} iterations unless a row says otherwise, trained on "
             f"{len(dev['fitting_videos'])} train videos and "
             f"scored on the other {len(dev['dev_videos'])} (videos {', '.join(dev['dev_videos'])}); seeds "
             f"{', '.join(map(str, dev['seeds']))}, the same for every setting. IoU in percent, seed mean "
             "[min–max]; a difference smaller than the seed spread is a tie:",
             "", "| settings | " + " | ".join(names) + " | mean | time per training |",
             "|---|" + "---|" * (len(names) + 2)]
    for name, row in rows.items():
        runs = list(row["seeds"].values())
        lines.append(f"| {name} (`{' '.join(row['options'])}`) | "
                     + " | ".join(spread([r["iou"][n] for r in runs]) for n in names)
                     + f" | {spread([mean(r['iou'].values()) for r in runs])} | "
                     f"{mean(r['seconds'] for r in runs) / 60:.1f} min |")
    return lines + [""]


def _rival_line(checks: dict, rival: str) -> str:
    """The target "ours ahead of RIVAL": seed 0's difference, and the paired call over the seeds where they ran."""
    line = (f"- ours ahead of {rival} (same Dice term): {100 * checks[f'ours_minus_{rival}']:+.1f} points — "
            f"{_yes(checks[f'ours_minus_{rival}'] > 0)}")
    paired = checks.get(f"ours_minus_{rival}_seeds")
    if paired:
        line += (f"; over the learning-step seeds, paired: {', '.join(f'{100 * d:+.1f}' for d in paired['deltas'])} "
                 f"points — {paired['call']} (ahead or behind only beyond the larger seed spread of the two)")
    return line


def _seeded_lines(seeded: dict | None) -> list[str]:
    """The section on the compared strategies under several learning-step seeds (none without them)."""
    if not seeded:
        return []
    return ["## Ours and its rivals under several learning-step seeds", "",
            f"The same base model; the learning steps run with seeds {', '.join(map(str, seeded['seeds']))} (seed 0 "
            "is the run of the tables above), the same seeds for every strategy (paired): the spread is that of the "
            "learning steps alone. IoU in percent after the last step, seed mean [min–max]; a difference smaller "
            "than the seed spread is a tie:", "", *seed_table_lines(seeded), ""]


def _replay_lines(replay: dict) -> list[str]:
    f = replay["frechet"]
    classes = replay["classes"]
    lines = ["## Does the diffusion replay stand in for the real frames?", "",
             f"{replay['count']['replayed']} frames replayed by the base model's diffusion model, against its "
             f"{replay['count']['base_real']} real training frames (which later steps no longer have) and "
             f"{replay['count']['other_real']} real frames of other patients (step 1's videos).", "",
             f"Fréchet distance (MONAI `FIDMetric`) on {replay['feature']}:", "",
             "| sets compared | Fréchet distance |", "|---|---|",
             f"| replayed vs base-step real frames | {f['replayed_vs_base_real']:.2f} |",
             f"| other patients' real frames vs base-step real frames (the natural gap) | "
             f"{f['other_patients_vs_base_real']:.2f} |",
             f"| smooth random colour fields vs base-step real frames (no anatomy at all, for scale) | "
             f"{f['noise_vs_base_real']:.2f} |", "",
             f"Share of pixels the base segmenter predicts as each class (argmax), and in brackets the share its "
             f"pseudo-labels keep (softmax ≥ {replay['confidence']}), in percent:", "",
             "| frames | " + " | ".join(classes) + " |", "|---|" + "---|" * len(classes)]
    for name, shares in replay["shares"].items():
        lines.append(f"| {name.replace('_', ' ')} | " + " | ".join(
            f"{100 * p:.1f} ({100 * k:.1f})" for p, k in zip(shares["predicted"], shares["pseudo_labelled"])) + " |")
    return lines + ["", "![replayed and real frames](replay_grid.png)", "", f"*{CAPTION}*", ""]


def plot(result: dict, summary: dict, path: Path) -> None:
    """Mean IoU of the old, new and all structures after each step, a line per variant, joint as a star."""
    fig, axes = pyplot().subplots(1, 3, figsize=(14, 4.2), sharey=True)
    steps = list(range(len(result["steps"])))
    for axis, group in zip(axes, ("old", "new", "all")):
        for variant, rows in summary["table"].items():
            style = "-" if not variant.startswith("ours ") else "--"
            axis.plot(steps, [r[group] for r in rows], style, marker="o", label=variant,
                      linewidth=2.5 if variant == "ours" else 1.2)
        if group == "all":
            axis.scatter([steps[-1]], [summary["checks"]["joint_all"]], marker="*", s=160, color="black",
                         label="joint (offline)", zorder=5)
        axis.set_title(f"mean IoU, {group} structures (val videos)", fontsize=9)
        axis.set_xlabel("step")
        axis.set_xticks(steps)
        axis.grid(alpha=0.3)
    axes[0].set_ylabel("IoU")
    axes[-1].legend(loc="upper right", fontsize=6.5)
    save(fig, path, dpi=110, title=result["description"])


def markdown(raw: dict, summary: dict | None) -> str:
    settings = {k: v for k, v in raw["settings"].items()}
    lines = ["# IncrementalLap on real laparoscopic frames: Endoscapes-Seg50", "",
             *(["**SMOKE RUN: a few iterations per step; its scores mean nothing.**", ""] if raw.get("smoke") else []),
             ATTRIBUTION, "",
             f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, CPU only, torch "
             f"threads {raw['threads']}. Command: `{raw['command']}`; wall time of the last invocation "
             f"{raw['total_seconds'] / 60:.1f} min (times are clean only when nothing else ran on the machine).", "",
             # The protocol's settings (the learning steps' too); a --dev report trains the joint model only, with
             # its own rows' options.
             *([f"Settings: `{settings}`", ""] if raw.get("result") or raw.get("dev_steps") else []), CONTEXT, ""]
    if raw.get("dev"):
        lines += _dev_lines(raw["dev"])
    if raw.get("dev_steps"):
        lines += dev_steps_lines(raw["dev_steps"])
    if summary is None:
        return "\n".join(lines)
    result = raw["result"]
    steps, c = result["steps"], summary["checks"]
    lines += ["## Protocol", "",
              "Steps: " + "; ".join(f"{i}: +{', '.join(s['classes'])} (videos {', '.join(s['patients'])})"
                                     for i, s in enumerate(steps)) + ". Scored after every step on the 10 val videos ("
              + ", ".join(result["test_patients"]) + f"), on the working grid ({result['description'].split(', ')[-1]}"
              ", after the endoscope's black border is cropped); pixels marked 255 (uncertain) are left out.", "",
              "## Mean IoU of old / new / all structures after each step (percent)", "",
              *step_header("variant", len(steps), "time (steps)")]
    for variant, rows in summary["table"].items():
        lines.append(f"| {variant} | " + " | ".join(iou_cells(rows)) + f" | {result['seconds'][variant] / 60:.1f} min |")
    lines.append("| joint (offline: all train videos, all labels) | " + " | ".join("" for _ in steps[1:])
                 + f" | – / – / {100 * c['joint_all']:.1f} | {result['seconds']['joint'] / 60:.1f} min |")
    final = {v: curve[-1] for v, curve in result["curves"].items()}
    lines += ["", f"Base step (shared by every variant, with its replay diffusion model): "
                  f"{result['seconds']['base'] / 60:.1f} min.", "",
              "## Per-structure IoU after the last step (percent)", "",
              *final_iou_table({**final, "joint": result["joint"]}), "",
              "## Per-structure Dice after the last step (percent)", "",
              *final_iou_table({**result["final_dice"], "joint": result["joint_dice"]}), "",
              *_seeded_lines(result.get("seeded")),
              "## Targets", "",
              f"- joint learns every structure (IoU > 0 for all six): {_yes(c['joint_learns_every_structure'])}",
              f"- joint mean IoU ≥ 0.40: {100 * c['joint_all']:.1f} — {_yes(c['joint_at_least_040'])}"]
    if "ours_all" in c:
        over_seeds = c.get("ours_over_joint_seeds")
        lines += [f"- ours ≥ 0.90 × joint after the last step: {c['ours_over_joint']:.3f} — "
                  f"{_yes(c['ours_at_least_090_joint'])}"
                  + (f" (learning-step seeds {', '.join(map(str, result['seeded']['seeds']))}: "
                     f"{mean(over_seeds):.3f} [{min(over_seeds):.3f}–{max(over_seeds):.3f}])" if over_seeds else ""),
                  f"- ours' old structures lose ≤ 5 IoU points in any step: worst {c['ours_worst_old_drop_points']:.1f}"
                  f" — {_yes(c['ours_keeps_old_within_5_points'])}"]
        lines += [_rival_line(c, rival) for rival in RIVALS if f"ours_minus_{rival}" in c]
    if "finetune_forgets" in c:
        lines.append(f"- finetune forgets (old structures at most half its base score): "
                     f"{100 * c['finetune_old_after_last_step']:.1f} — {'yes' if c['finetune_forgets'] else 'NO'}")
    lines += ["", "![learning curves](iou_endoscapes.png)", "", *_replay_lines(result["replay"]),
              "## Val frames", "", "![val frames](val_predictions.png)", "",
              "*Frames: Endoscapes-Seg50 (Murali et al. 2023, CAMMA), CC BY-NC-SA 4.0.*", ""]
    if result.get("reused"):
        lines += [f"Reused from an earlier run with the same options (`--reuse-models`; times from the bundles): "
                  f"{', '.join(result['reused'])}.", ""]
    return "\n".join(lines)


def write_report(out: Path, raw: dict, command: str, replay_grid: Path | None = None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    summary = None
    if raw.get("result"):
        summary = summarize(raw["result"])
        plot(raw["result"], summary, out / "iou_endoscapes.png")
        if replay_grid is not None and replay_grid.is_file():
            shutil.copyfile(replay_grid, out / "replay_grid.png")
    write_json(out / "results.json", {**raw, "command": command, "summary": summary})
    write_text(out / "report.md", markdown({**raw, "command": command}, summary))
