"""Class-incremental benchmark of IncrementalLap on REAL laparoscopic frames: Endoscapes-Seg50 (train + val videos).

Protocol (``benchmarks.harness.lap_protocols``, ``endoscapes``): the 30 train videos in three disjoint groups of 10
patients; step 0 learns gallbladder + tool from group 0, step 1 cystic artery + cystic duct from group 1, step 2
cystic plate + Calot triangle from group 2; after every step the model is scored on the 10 val videos (mean IoU and
Dice per structure, on the working grid, 255 = uncertain pixels left out). The joint model (all train videos, all
labels) is the upper bound. Every strategy runs with and without the new-class soft Dice term that ``ours`` uses,
and ``ours`` without replay, without the contrastive term and without distillation. The base model's diffusion
replay is compared with the real frames it stands in for (``benchmarks.harness.lap_replay_evidence``).

Segmenter settings are compared with ``--dev``: the joint model trained on 24 train videos and scored on the 6
others, never on the val videos (zoom windows and crops were checked that way, call by call; docs/incremental.md).
Settings of the learning steps are compared with ``--dev-steps VARIANTS``: the same three steps on those 24 videos,
scored on the 6 (``benchmarks.harness.lap_dev_steps``).
The official 10 test videos are not in ../shared/data: they are kept for an independent check.

One command, from the repository root::

    .venv/bin/python -m benchmarks.lap_endoscapes

writes ``benchmarks/results/lap_endoscapes/{report.md,results.json,*.png}``; ``--reuse-models`` keeps the bundles an
earlier (stopped) run left in ``--work`` when their options are today's. Skips with a message when the data are
absent. Endoscapes-Seg50: CC BY-NC-SA 4.0 (Murali et al. 2023, CAMMA); no frame enters the repository.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from benchmarks.harness.cli import add_seeds_option, benchmark_parser, log, report_folder
from benchmarks.harness.lap_endoscapes_report import RIVALS, write_report
from benchmarks.harness.lap_dev_steps import run_dev_steps
from benchmarks.harness.lap_protocols import (ENDOSCAPES_DEV_VIDEOS, ENDOSCAPES_FITTING_VIDEOS, ENDOSCAPES_FOLDER,
                                              ENDOSCAPES_TRAIN_VIDEOS, PROTOCOLS)
from benchmarks.harness.lap_runs import (SMOKE_SETTINGS, evaluate, fitter, ious, learn_steps, train_base,
                                         train_options, variant_tag)
from benchmarks.harness.paths import shown
from benchmarks.harness.report import invocation
from distillseg.common.option_types import whole_number

NAME = "lap_endoscapes"
# Variant -> (strategy, extra ``lap learn`` options). "+ Dice" / "without Dice" toggle the new-class soft Dice term
# (weight 1, ours' default) so every strategy is seen with and without it.
VARIANTS = {
    "ours": ("ours", ()),
    "ours without Dice": ("ours", ("--dice-weight", 0)),
    "finetune": ("finetune", ()),
    "finetune + Dice": ("finetune", ("--dice-weight", 1)),
    "mib": ("mib", ()),
    "mib + Dice": ("mib", ("--dice-weight", 1)),
    "plop": ("plop", ()),
    "plop + Dice": ("plop", ("--dice-weight", 1)),
    "ours without replay": ("ours", ("--replay", 0)),
    "ours without contrast": ("ours", ("--contrastive-weight", 0)),
    "ours without distillation": ("ours", ("--kd-weight", 0, "--pod-weight", 0)),
}
# Learning-step settings that --dev-steps may compare besides VARIANTS (not run in the protocol's val table):
# name -> (strategy, extra ``lap learn`` options). Each gives its learning rate and class balance itself, so its name
# stays true whatever the protocol's step settings are (they were lr 1e-3 and no class balance until 2026-12-07).
_STEP_LR_BALANCE = ("--lr", 0.0003, "--class-balance", 1)
STEP_CANDIDATES = {
    "ours with step lr 1e-3": ("ours", ("--lr", 0.001, "--class-balance", 0)),
    "ours with step lr 3e-4": ("ours", ("--lr", 0.0003, "--class-balance", 0)),
    "ours with step lr 3e-4 + class balance 1": ("ours", ("--lr", 0.0003, "--class-balance", 1)),
    "ours with step lr 1e-3 + class balance 1": ("ours", ("--lr", 0.001, "--class-balance", 1)),
    # The same segmenter cost as the protocol's 150 steps of 8 whole 128x224 frames, spent on more, smaller steps:
    # twice (four times) the steps of half (a quarter of) the batch, or 3.5 times the steps on 64x128 windows (3.5
    # times fewer pixels), half of them centred on a structure the frame shows (a new one or an old pseudo-label).
    "ours with 300 steps of batch 4": ("ours", (*_STEP_LR_BALANCE, "--iterations", 300, "--batch-size", 4)),
    "ours with 600 steps of batch 2": ("ours", (*_STEP_LR_BALANCE, "--iterations", 600, "--batch-size", 2)),
    "ours with 300 steps of batch 4 at lr 6e-4": ("ours", ("--lr", 0.0006, "--class-balance", 1, "--iterations", 300,
                                                         "--batch-size", 4)),
    # Inverse-frequency weights (class balance 1) paint the new structures over much of a val frame (val_predictions):
    # their square root instead, as lap train's default.
    "ours with 300 steps of batch 4 + class balance 0.5": ("ours", ("--lr", 0.0003, "--class-balance", 0.5,
                                                                     "--iterations", 300, "--batch-size", 4)),
    # Twice the protocol's step budget (the whole benchmark took 45.9 of its 90 minutes with 300 steps of 4).
    "ours with 600 steps of batch 4": ("ours", (*_STEP_LR_BALANCE, "--iterations", 600, "--batch-size", 4)),
    "ours with 525 steps on 64x128 windows + focus 0.5": ("ours", (*_STEP_LR_BALANCE, "--iterations", 525,
                                                                    "--crop", 64, 128, "--focus", 0.5)),
}
DEV_STEP_VARIANTS = {**VARIANTS, **STEP_CANDIDATES}
# The variants the targets compare (ours against mib and plop with the same Dice term), and ours without replay (does
# the replay help?), also run with the extra learning-step seeds of --step-seeds, so that "ahead" is called against
# the seed spread, not on one seed.
SEEDED_VARIANTS = ("ours", *RIVALS, "ours without replay")
# Segmenter settings compared by --dev (joint model, 24 train videos -> 6 held-out train videos). Plain cross-entropy
# (without the Dice term), zoom windows without --focus and 256x448 frames trained on 128x224 crops were compared
# once, call by call, before --dev had seeds (docs/incremental.md).
# Each row names its class balance: the rows before it was added ran, and still run, with unweighted cross-entropy.
# key (for --dev-settings) -> (the report's name of the setting, its `lap train` options)
DEV_SETTINGS = {
    "dice": ("cross-entropy + Dice", ("--dice-weight", 1, "--class-balance", 0)),
    "zoom": ("cross-entropy + Dice + zoom 0.6 + focus 0.5",
             ("--dice-weight", 1, "--class-balance", 0, "--zoom", 0.6, "--focus", 0.5)),
    "lr": ("cross-entropy + Dice, learning rate 3e-3", ("--dice-weight", 1, "--class-balance", 0, "--lr", 0.003)),
    "balance": ("class-balanced cross-entropy (frequency^-0.5) + Dice",
                ("--dice-weight", 1, "--class-balance", 0.5)),
    # How long the joint model (the upper bound) trains: the protocol's 1500 steps of 8 against twice that.
    "balance1500": ("class-balanced cross-entropy (frequency^-0.5) + Dice, 1500 iterations (the protocol's joint)",
                    ("--dice-weight", 1, "--class-balance", 0.5, "--iterations", 1500)),
    "balance3000": ("class-balanced cross-entropy (frequency^-0.5) + Dice, 3000 iterations",
                    ("--dice-weight", 1, "--class-balance", 0.5, "--iterations", 3000)),
    # Twice the iterations did not help; a stronger class balance or a deeper encoder at the protocol's 1500.
    "inverse1500": ("inverse-frequency cross-entropy (frequency^-1) + Dice, 1500 iterations",
                    ("--dice-weight", 1, "--class-balance", 1, "--iterations", 1500)),
    "resnet34": ("class-balanced cross-entropy (frequency^-0.5) + Dice, ResNet-34 encoder, 1500 iterations",
                 ("--dice-weight", 1, "--class-balance", 0.5, "--iterations", 1500, "--backbone", "resnet34")),
    # The small structures cover 0.3-1.4 % of a frame: whole frames at 1.5 times the protocol's width and height
    # (2.36 times the pixels: 336 = 1.5 x 224 is not the multiple of 32 the network needs; the last --size wins),
    # scored on that finer grid.
    "size192": ("class-balanced cross-entropy (frequency^-0.5) + Dice, 1500 iterations, 192x352 frames",
                ("--dice-weight", 1, "--class-balance", 0.5, "--iterations", 1500, "--size", 192, 352)),
}
DEV_ITERATIONS = 600


def _dice(work: Path, model: Path) -> dict[str, float]:
    """Dice per structure from the evaluation report ``evaluate`` left beside the model."""
    report = json.loads((work / f"{model.name}.eval.json").read_text())
    return {n: s["dice"] for n, s in report["per_class"].items()}


def run(data: Path, work: Path, settings: dict, threads: int, reuse: bool, variants: dict, replay_count: int,
        step_seeds: list[int]) -> dict:
    """Base, joint, every variant's steps (learning-step seed 0), the ``SEEDED_VARIANTS``' steps again under each of
    ``step_seeds`` (the same base model), the replay evidence and the prediction figure's models."""
    from benchmarks.harness.lap_replay_evidence import replay_evidence

    protocol = PROTOCOLS["endoscapes"]
    steps = protocol["steps"]
    reused: list[str] = []
    fit = fitter(threads, reuse, reused)
    seconds: dict[str, float] = {}
    log("base step")
    base, seconds["base"], base_scores = train_base(protocol, data, work, settings, threads, fit)
    log("replay evidence")
    started = time.monotonic()
    replay = replay_evidence(base, data, protocol, replay_count, 0, work / "replay_grid.png")
    seconds["replay_evidence"] = time.monotonic() - started
    all_classes = [c for s in steps for c in s["classes"]]
    log("joint")
    joint = work / "joint"
    seconds["joint"] = fit("train", "--data", data, "--classes", ",".join(all_classes), "--out", joint,
                           "--patients", ",".join(ENDOSCAPES_TRAIN_VIDEOS), "--iterations",
                           settings["joint_iterations"], "--diffusion-iterations", 0,
                           *train_options(protocol, settings))
    joint_iou = ious(evaluate(joint, protocol, data, work, threads), all_classes)
    curves, final_dice = {}, {}
    for variant, (strategy, extra) in variants.items():
        log(f"variant {variant}")
        curves[variant], seconds[variant] = learn_steps(strategy, base, base_scores, protocol, data, work, settings,
                                                        threads, fit, extra, tag=variant_tag(variant))
        final_dice[variant] = _dice(work, work / f"{variant_tag(variant)}_step{len(steps) - 1}")
    seeded = {"steps": steps, "seeds": [0, *step_seeds], "curves": {}, "seconds": {}, "variants": {}}
    for variant in [v for v in SEEDED_VARIANTS if v in variants] if step_seeds else []:
        strategy, extra = variants[variant]
        seeded["variants"][variant] = [strategy, list(map(str, extra))]
        seeded["curves"][variant], seeded["seconds"][variant] = {"0": curves[variant]}, {"0": seconds[variant]}
        for seed in step_seeds:
            log(f"variant {variant}, learning-step seed {seed}")
            seeded["curves"][variant][str(seed)], seeded["seconds"][variant][str(seed)] = learn_steps(
                strategy, base, base_scores, protocol, data, work, settings, threads, fit, extra,
                tag=f"{variant_tag(variant)}_seed{seed}", seed=seed)
    return {"seeded": seeded if seeded["curves"] else None, "protocol": "endoscapes",
            "description": protocol["description"], "steps": steps,
            "test_patients": protocol["test_patients"], "curves": curves, "joint": joint_iou,
            "joint_dice": _dice(work, joint), "final_dice": final_dice, "seconds": seconds, "reused": reused,
            "replay": replay, "variants": {v: [s, list(map(str, e))] for v, (s, e) in variants.items()}}


def _dev_settings(text: str) -> list[str]:
    """``--dev-settings dice,balance`` -> those keys of ``DEV_SETTINGS``."""
    keys = text.split(",")
    unknown = [k for k in keys if k not in DEV_SETTINGS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown setting(s) {','.join(unknown)}; choose from "
                                         f"{','.join(DEV_SETTINGS)}")
    return keys


def _variant_names(text: str) -> list[str]:
    """``--dev-steps "ours,ours without Dice"`` -> those keys of ``VARIANTS`` or ``STEP_CANDIDATES``."""
    names = text.split(",")
    unknown = [n for n in names if n not in DEV_STEP_VARIANTS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown variant(s) {','.join(unknown)}; choose from "
                                         f"{','.join(DEV_STEP_VARIANTS)}")
    return names


def run_dev(data: Path, work: Path, settings: dict, threads: int, reuse: bool, seeds: list[int],
            keys: list[str]) -> dict:
    """The joint model under each of the ``DEV_SETTINGS`` in ``keys`` and ``seeds`` (the same seeds for every
    setting: paired), trained on the fitting videos and scored on the held-out ones: how the segmenter's
    settings were chosen without looking at the val videos."""
    protocol = {**PROTOCOLS["endoscapes"], "test_patients": ENDOSCAPES_DEV_VIDEOS}
    classes = [c for s in protocol["steps"] for c in s["classes"]]
    fitting = ENDOSCAPES_FITTING_VIDEOS
    reused: list[str] = []
    fit = fitter(threads, reuse, reused)
    rows = {}
    plain = {**settings, "train_extra": []}
    for key in keys:
        name, extra = DEV_SETTINGS[key]
        rows[name] = {"options": list(map(str, extra)), "seeds": {}}
        for seed in seeds:
            log(f"dev: {name}, seed {seed}")
            model = work / f"dev_{variant_tag(name)}_seed{seed}"
            seconds = fit("train", "--data", data, "--classes", ",".join(classes), "--out", model, "--patients",
                          ",".join(fitting), "--iterations", DEV_ITERATIONS, "--diffusion-iterations", 0,
                          *train_options(protocol, plain), *extra, "--seed", seed)
            report = evaluate(model, protocol, data, work, threads)
            rows[name]["seeds"][str(seed)] = {"seconds": seconds,
                                              "iou": {n: report["per_class"][n]["iou"] for n in classes},
                                              "dice": {n: report["per_class"][n]["dice"] for n in classes}}
    return {"dev_videos": ENDOSCAPES_DEV_VIDEOS, "fitting_videos": fitting, "iterations": DEV_ITERATIONS,
            "seeds": seeds, "rows": rows, "reused": reused}


def main(argv: list[str] | None = None) -> int:
    parser = benchmark_parser(__doc__, NAME, "lap_endoscapes", smoke="a few iterations per step, two variants",
                              data="the shared data folder (Endoscapes-Seg50 under laparoscopy/)")
    parser.add_argument("--reuse-models", action="store_true",
                        help="keep the bundles an earlier run left in --work when their options and strategy settings "
                             "are today's (their times come from the bundles); the report lists them")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--dev", action="store_true",
                      help="only the segmenter's settings comparison on held-out train videos (no val video is used)")
    mode.add_argument("--dev-steps", type=_variant_names, metavar="VARIANTS",
                      help="only the learning steps of these comma-separated variants, on held-out train videos (no "
                           f"val video is used); variants: {','.join(DEV_STEP_VARIANTS)}")
    add_seeds_option(parser, [0, 1, 2], "seeds of every --dev setting or --dev-steps variant, the same for each "
                     "(paired; default: 0 1 2)", name="--dev-seeds")
    parser.add_argument("--dev-settings", type=_dev_settings, default=list(DEV_SETTINGS), metavar="KEYS",
                        help=f"comma-separated subset of {','.join(DEV_SETTINGS)} (default: all)")
    parser.add_argument("--replay-count", type=int, default=64, help="replayed frames for the evidence (default 64)")
    parser.add_argument("--diffusion-iterations", type=whole_number(1), default=None,
                        help="iterations of every replay diffusion model (default: the protocol's, "
                             f"{PROTOCOLS['endoscapes']['settings']['diffusion_iterations']}); --dev-steps with "
                             "another budget works in WORK/dev_steps_diffusion<N>")
    add_seeds_option(parser, None, f"learning-step seeds run besides seed 0 by {', '.join(SEEDED_VARIANTS)}, on the "
                     "same base model (default: 1 2; with --smoke: none)", name="--step-seeds", nargs="*")
    args = parser.parse_args(argv)
    if args.step_seeds and min(args.step_seeds) < 1:
        parser.error("--step-seeds: seeds of 1 or more (seed 0 is the protocol's own run)")
    # A settings comparison is its own report and raw result: it never replaces the protocol's.
    mode = "_dev" if args.dev else "_dev_steps" if args.dev_steps else ""
    out = report_folder(args, NAME + mode)
    raw_path = args.work / f"raw{mode}_result.json"
    data = args.data / ENDOSCAPES_FOLDER
    if not (data / "labels.json").is_file():
        print(f"Endoscapes-Seg50 is not at {shown(data)}: benchmark skipped.", file=sys.stderr)
        return 0
    if args.report_only:
        raw = json.loads(raw_path.read_text())
        write_report(out, raw, raw["command"])
        return 0
    settings = {**PROTOCOLS["endoscapes"]["settings"], **(SMOKE_SETTINGS if args.smoke else {})}
    if args.diffusion_iterations:
        settings["diffusion_iterations"] = args.diffusion_iterations
    args.work.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    raw = json.loads(raw_path.read_text()) if raw_path.is_file() and args.reuse_models else {}
    raw.update({"command": invocation(), "settings": settings, "threads": args.threads, "smoke": args.smoke})
    if args.dev:
        raw["dev"] = run_dev(data, args.work, settings, args.threads, args.reuse_models, args.dev_seeds,
                             args.dev_settings)
    elif args.dev_steps:
        raw["dev_steps"] = run_dev_steps(data, args.work, settings, args.threads, args.reuse_models, args.dev_seeds,
                                         {v: DEV_STEP_VARIANTS[v] for v in args.dev_steps},
                                         4 if args.smoke else args.replay_count)
    else:
        variants = {k: VARIANTS[k] for k in ("ours", "finetune")} if args.smoke else VARIANTS
        step_seeds = args.step_seeds if args.step_seeds is not None else [] if args.smoke else [1, 2]
        raw["result"] = run(data, args.work, settings, args.threads, args.reuse_models, variants,
                            4 if args.smoke else args.replay_count, step_seeds)
        from benchmarks.harness.lap_frame_figures import prediction_figure

        last = len(PROTOCOLS["endoscapes"]["steps"]) - 1
        prediction_figure({"ours": args.work / f"ours_step{last}", "joint": args.work / "joint",
                           "finetune": args.work / f"finetune_step{last}"}, data,
                          PROTOCOLS["endoscapes"]["test_patients"], out / "val_predictions.png")
    raw["total_seconds"] = time.monotonic() - started  # the report gives the wall time of the last invocation
    raw_path.write_text(json.dumps(raw, indent=1))
    write_report(out, raw, raw["command"], replay_grid=args.work / "replay_grid.png")
    log(f"report in {shown(out / 'report.md')} ({raw['total_seconds'] / 60:.1f} min)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
