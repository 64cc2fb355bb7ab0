"""Is ours' over-prediction of the small new structures a calibration problem? Post-hoc logit adjustment of the
models that ``benchmarks.lap_endoscapes --dev-steps`` trained, scored on the held-out train videos (no val video).

On real frames ``ours`` paints the cystic duct and plate over 5-12 % of a frame where they cover about 1 %. The
learning steps weigh each new structure's cross-entropy by its inverse pixel frequency (``--class-balance 1``), and a
classifier trained with class weights w_c predicts, at best, argmax_c (log p(c|x) + log w_c): its rare classes are
over-called by design. Logit adjustment (Menon et al. 2021, "Long-tail learning via logit adjustment") subtracts
tau * log(w_c / w_background) from each class's logit at prediction time; tau = 1 undoes the weighting, 0 keeps it.
Each structure takes the weight of the step that learned it (its ``class_balance`` power and that step's training
frames, both read from the model's own history): no setting is chosen on the frames it is scored on.

It trains nothing: it needs the dev-step models a ``--dev-steps`` run left in ``WORK/dev_steps`` (for example
``.venv/bin/python -m benchmarks.lap_endoscapes --dev-steps "ours with 300 steps of batch 4" --dev-seeds 0 1``)::

    .venv/bin/python -m benchmarks.lap_logit_adjustment --variant "ours with 300 steps of batch 4" --seeds 0 1

writes ``benchmarks/results/lap_logit_adjustment/{report.md,results.json}``.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch

from benchmarks.harness.cli import add_seeds_option, log
from benchmarks.harness.lap_protocols import ENDOSCAPES_DEV_VIDEOS, ENDOSCAPES_FOLDER
from benchmarks.harness.lap_runs import variant_tag
from benchmarks.harness.paths import RESULTS, SHARED_DATA, shown
from benchmarks.harness.report import about, fmt, header, section, write_json, write_text
from distillseg.common.option_types import whole_number
from distillseg.common.progress import Progress
from distillseg.lap.data import read_frames
from distillseg.lap.model_bundle import load_lap_model
from distillseg.lap.mib_losses import IGNORE
from distillseg.lap.segmenter_training import class_balance_weights

NAME = "lap_logit_adjustment"
TAUS = (0.0, 0.25, 0.5, 0.75, 1.0)


def learned_log_weights(model, data: Path) -> torch.Tensor:
    """(outputs,) log(w_c / w_background) of every structure in the step that learned it; 0 for the background.
    Each step's training frames, classes and ``class_balance`` power come from the model's history."""
    out = torch.zeros(model.registry.num_outputs)
    for entry in model.history:
        options = entry["options"]
        names = options.get("new_classes") or options["classes"]
        values = {n: k + 1 for k, n in enumerate(names)}
        frames = read_frames(data, names, values, model.size,
                             Progress("none"), source=options["source"], split=options["split"],
                             patients=options["patients"], unknown_values=options["unknown_values"])
        weights = class_balance_weights(frames.labels, len(names) + 1, float(options["class_balance"]))
        for name, value in values.items():
            out[model.registry.value_of(name)] = math.log(float(weights[value] / weights[0]))
    return out


@torch.no_grad()
def logits_on(model, frames) -> torch.Tensor:
    """(N, outputs, H, W) float logits of the model on the working-grid frames."""
    net = model.build(torch.device("cpu"))
    net.eval()
    return torch.cat([net(frames.images[k:k + 16].float() / 255.0).logits for k in range(0, len(frames), 16)])


def scores(predicted: torch.Tensor, truth: torch.Tensor, values: dict[str, int]) -> dict[str, dict[str, float]]:
    """Per structure: IoU, precision, recall and the share of labelled pixels predicted / true (fractions)."""
    labelled = truth != IGNORE
    total = int(labelled.sum())
    out = {}
    for name, value in values.items():
        p, t = (predicted == value) & labelled, truth == value
        hit, called, true = int((p & t).sum()), int(p.sum()), int(t.sum())
        out[name] = {"iou": hit / max(called + true - hit, 1), "precision": hit / max(called, 1),
                     "recall": hit / max(true, 1), "predicted_share": called / total, "true_share": true / total}
    return out


def run(data: Path, work: Path, variant: str, seeds: list[int]) -> dict:
    runs = {}
    for seed in seeds:
        path = work / "dev_steps" / f"{variant_tag(variant)}_seed{seed}_step2"
        if not (path / "manifest.json").is_file():
            raise SystemExit(f"{shown(path)}: no dev-step model there; run benchmarks.lap_endoscapes --dev-steps "
                             f"\"{variant}\" --dev-seeds {seed} first.")
        log(f"{variant}, seed {seed}")
        model = load_lap_model(path)
        values = {n: model.registry.value_of(n) for n in model.registry.names}
        frames = read_frames(data, list(values), values, model.size, Progress("none"), source="auto", split="all",
                             patients=ENDOSCAPES_DEV_VIDEOS, unknown_values="skip")
        logits, log_weights = logits_on(model, frames), learned_log_weights(model, data)
        truth = frames.labels.long()
        runs[str(seed)] = {"log_weights": dict(zip(values, log_weights[1:].tolist())),
                           "by_tau": {str(tau): scores((logits - tau * log_weights[None, :, None, None]).argmax(1),
                                                       truth, values) for tau in TAUS}}
    return {"variant": variant, "seeds": seeds, "dev_videos": ENDOSCAPES_DEV_VIDEOS, "taus": list(TAUS), "runs": runs}


def markdown(result: dict) -> str:
    runs, names = result["runs"], list(next(iter(result["runs"].values()))["log_weights"])
    seeds = list(runs)
    first = runs[seeds[0]]["by_tau"]["0.0"]
    lines = header("Post-hoc logit adjustment of ours on held-out Endoscapes train videos", result["about"]["command"],
                   result["about"], [f"**Models**: `{result['variant']}`, learning-step seeds {', '.join(seeds)}, "
                                     "after the last step (trained by `benchmarks.lap_endoscapes --dev-steps`)",
                                     f"**Scored on**: held-out train videos {', '.join(result['dev_videos'])} "
                                     "(no val video); working grid, 255 = uncertain left out",
                                     f"**Total wall time**: {result['total_seconds'] / 60:.1f} min"])
    lines += section("What the model calls each structure (tau 0, as trained)",
                     f"Seed {seeds[0]}; shares of the labelled pixels, in percent. log(w / w_background) is the "
                     "adjustment's unit: the class weight of the step that learned the structure.",
                     ["structure", "log(w / w_bg)", "predicted share", "true share", "precision", "recall", "IoU"],
                     [[n, fmt(runs[seeds[0]]["log_weights"][n], 2), fmt(100 * first[n]["predicted_share"], 2),
                       fmt(100 * first[n]["true_share"], 2), fmt(first[n]["precision"], 2),
                       fmt(first[n]["recall"], 2), fmt(100 * first[n]["iou"], 1)] for n in names])
    rows = []
    for tau in result["taus"]:
        per_seed = [runs[s]["by_tau"][str(tau)] for s in seeds]
        means = [sum(r[n]["iou"] for n in names) / len(names) for r in per_seed]
        rows.append([fmt(tau, 2), *(" / ".join(fmt(100 * r[n]["iou"], 1) for r in per_seed) for n in names),
                     " / ".join(fmt(100 * m, 1) for m in means)])
    lines += section("IoU under each adjustment",
                     f"IoU in percent, seed by seed ({' / '.join(seeds)}); the logits minus tau · log(w / w_bg).",
                     ["tau", *names, "mean"], rows)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m benchmarks.{NAME}", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=SHARED_DATA,
                        help="the shared data folder, Endoscapes-Seg50 under laparoscopy/ (default: ../shared/data)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/lap_endoscapes"),
                        help="benchmarks.lap_endoscapes' scratch folder, with its dev_steps/ (default: "
                             "/tmp/lap_endoscapes)")
    parser.add_argument("--out", type=Path, default=RESULTS / NAME,
                        help=f"report folder (default: benchmarks/results/{NAME})")
    parser.add_argument("--threads", type=whole_number(1), default=2, help="CPU threads")
    parser.add_argument("--variant", default="ours with 300 steps of batch 4",
                        help="the --dev-steps variant whose models to adjust (default: the protocol's ours)")
    add_seeds_option(parser, [0, 1], "its learning-step seeds (default 0 1)")
    args = parser.parse_args(argv)
    if args.out.exists() and not args.out.is_dir():
        parser.error(f"--out {args.out}: not a folder (the report's folder; nothing there is replaced but its "
                     "report.md and results.json)")
    data = args.data / ENDOSCAPES_FOLDER
    if not (data / "labels.json").is_file():
        print(f"Endoscapes-Seg50 is not at {shown(data)}: benchmark skipped.", file=sys.stderr)
        return 0
    torch.set_num_threads(args.threads)
    started = time.monotonic()
    result = {"about": about(), **run(data, args.work, args.variant, args.seeds)}
    result["total_seconds"] = time.monotonic() - started
    out = args.out
    write_json(out / "results.json", result)
    write_text(out / "report.md", markdown(result) + "\n")
    log(f"report in {shown(out / 'report.md')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
