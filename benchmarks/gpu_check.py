"""GPU check: what the engine does on a CUDA GPU, measured in one run of under 8 minutes on one H100.

Run it through ``benchmarks/gpu_check.sh`` (it installs what is missing first); everything goes through the real
CLI, with ``--device cuda`` and automatic mixed precision (``--precision auto``: bf16 on an H100):

1. **Training** the brain model (OASIS atlas → vxm scan, ``../shared/data/brain``) at 2 mm with the CLI's default
   schedule and at 1 mm with a shorter one: seconds per stage, median step times, the engine's peak GPU memory
   (CUDA allocator), and the mean Dice of each model on the vxm scan (29 structures, ``oneshot evaluate``).
2. **Segmentation** of the 160×192×224 brain (1 mm model) and of a 512×512×300 CT (the spine CT resampled; a model
   from a minimal training at ``--spacing auto``): the whole ``segment`` command (cold) and ``distillseg worker``'s
   second request with the same model (warm), and the peak GPU memory.
3. **DDP**: the 2 mm training for ``--ddp-steps`` steps under ``torchrun --nproc_per_node=N`` on the N GPUs present
   (one sample per GPU, the default) against step 1's 2 mm training (one process, one sample): samples per second
   and the scaling. With one GPU, torchrun with one process still checks the NCCL path.

``--smoke`` runs every step at toy sizes on the CPU (4 mm brain copies, the spine CT as it is, one or two
iterations, gloo), so CI notices when the script rots; its figures mean nothing. Writes
``benchmarks/results/gpu/{report.md,results.json}`` (``WORK/report`` for a smoke run). On the GPU, a step that
would start after ``--budget-s`` is skipped and reported as such (a smoke run does every step).
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

from benchmarks.harness.cli import benchmark_parser, log, rebuilt_only, report_folder, save_run
from benchmarks.harness.gpu_report import write_report
from benchmarks.harness.report import about
from benchmarks.harness.run import distillseg
from benchmarks.harness.scale_cases import one_header_brain, prepare_cases, resampled
from benchmarks.harness.worker_runs import worker_requests

NAME = "gpu"
LABELS = "labels.json"


def _data(args) -> dict | None:
    """The brain pair under one header, its 2 mm / 1 mm training spacings and the CT; toy copies for a smoke run."""
    if not (args.data / "brain").is_dir() or not (args.data / "spine_ct").is_dir():
        return None
    folder = args.work / "data"
    oasis, seg35, scan, truth = one_header_brain(args.data, folder)
    if args.smoke:  # 40×48×56 copies of the brains (4 mm); the spine CT as it is (64×96×192)
        small = {name: folder / f"small_{name}.nii.gz" for name in ("oasis", "seg35", "scan", "truth")}
        if not small["truth"].is_file():
            resampled(oasis, seg35, (40, 48, 56), small["oasis"], small["seg35"])
            resampled(scan, truth, (40, 48, 56), small["scan"], small["truth"])
        oasis, seg35, scan, truth = small["oasis"], small["seg35"], small["scan"], small["truth"]
        ct = {"image": args.data / "spine_ct" / "verse_spine_image704.nii.gz",
              "labels": args.data / "spine_ct" / "verse_spine_label704.nii.gz"}
    else:
        case = prepare_cases(args.data, args.work)[2]
        ct = {"image": case["atlas"], "labels": case["labels"]}
    return {"atlas": oasis, "labels": seg35, "scan": scan, "truth": truth, "ct": ct,
            "spacings": {"2 mm": "8", "1 mm": "6"} if args.smoke else {"2 mm": "2", "1 mm": "atlas"}}


def _train(args, data: dict, resolution: str, out: Path) -> dict:
    schedule = {"2 mm": [], "1 mm": ["--augmenter-iterations", 50, "--iterations", 300, "--refine-iterations", 50]}
    if args.smoke:
        schedule = {r: ["--augmenter-iterations", 1, "--iterations", 2, "--refine-iterations", 0,
                        "--patch-size", "whole"] for r in schedule}
    run = distillseg("train", "--atlas", data["atlas"], "--atlas-labels", data["labels"], "--unlabeled", data["scan"],
                     "--out", out, "--spacing", data["spacings"][resolution], *schedule[resolution],
                     device=args.device, threads=args.threads, check=False)
    row = {"resolution": resolution, **run.summary(), **run.status(), "engine": run.result,
           "augmenter_step_s": run.median_step_seconds("augmenter"),
           "distill_step_s": run.median_step_seconds("distill")}
    if run.returncode == 0:
        report = out.parent / f"{out.name}_evaluate.json"
        labels = args.data / LABELS
        distillseg("evaluate", "--model", out, "--images", data["scan"], "--labels", data["truth"], "--report", report,
                   "--label-map", f"{labels}:oasis_seg35_to_freesurfer",
                   "--structures", f"{labels}:brain_eval_labels_recommended", device=args.device, threads=args.threads)
        row["mean_dice"] = json.loads(report.read_text()).get("mean_dice")
        row["working_grid"] = json.loads((out / "manifest.json").read_text())["preprocessing"]["grid"]["shape"]
    return row


def _segment(args, name: str, model: Path, first: Path, second: Path, work: Path) -> dict:
    """The cold command on ``second``; then a worker given ``first`` (loads the model) and ``second`` (warm)."""
    cold = distillseg("segment", "--model", model, "--input", second, "--output", work / f"{name}_cold.nii.gz",
                      device=args.device, threads=args.threads)
    common = ["oneshot", "segment", "--model", model, "--device", args.device, "--threads", args.threads]
    worker = worker_requests([[*common, "--input", first, "--output", work / f"{name}_first.nii.gz"],
                              [*common, "--input", second, "--output", work / f"{name}_warm.nii.gz"]])
    warm = worker["requests"][1]
    return {"case": name, "cold_seconds": round(cold.seconds, 2), "cold_in_process_seconds": cold.result["seconds"][0],
            "cold_peak_gpu_mb": cold.result.get("peak_memory_mb"), "warm_seconds": warm["seconds"],
            "warm_in_process_seconds": warm["result"].get("seconds", [None])[0],
            "worker_peak_gpu_mb": warm["result"].get("peak_memory_mb"), "worker_peak_rss_mb": worker["peak_rss_mb"],
            "device": args.device}


def _ddp(args, data: dict, work: Path, gpus: int, single: dict | None) -> list[dict]:
    """``torchrun`` on the GPUs present, one sample each, beside the 2 mm training's own step times (one process,
    one sample per step) as the baseline."""
    steps = 2 if args.smoke else args.ddp_steps
    out = work / "ddp"
    shutil.rmtree(out, ignore_errors=True)
    run = distillseg("train", "--atlas", data["atlas"], "--atlas-labels", data["labels"], "--unlabeled", data["scan"],
                     "--out", out, "--spacing", data["spacings"]["2 mm"], "--augmenter-iterations", steps,
                     "--iterations", steps, "--refine-iterations", 0, device=args.device, threads=args.threads,
                     launcher=[sys.executable, "-m", "torch.distributed.run", "--standalone",
                               f"--nproc_per_node={gpus}"], check=False)
    rows = [{"processes": gpus, "launcher": "torchrun", **run.status(), "seconds": round(run.seconds, 1),
             "augmenter_step_s": run.median_step_seconds("augmenter"),
             "distill_step_s": run.median_step_seconds("distill")}]
    if single:
        rows.insert(0, {"processes": 1, "launcher": "one process (the 2 mm training)", "ok": single["ok"],
                        "error": single["error"], "seconds": single["seconds"],
                        "augmenter_step_s": single["augmenter_step_s"], "distill_step_s": single["distill_step_s"]})
    for row in rows:
        row["samples_per_s"] = row["processes"] / row["distill_step_s"] if row["distill_step_s"] else None
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = benchmark_parser(__doc__, NAME, "gpu_check", smoke="toy sizes on the CPU")
    parser.add_argument("--budget-s", type=float, default=420.0, help="start no step after this many seconds")
    parser.add_argument("--ddp-steps", type=int, default=20, help="steps per stage of the DDP measurement")
    args = parser.parse_args(argv)
    out = report_folder(args, NAME)
    if rebuilt_only(args, out, write_report):
        return 0
    import torch

    gpus = torch.cuda.device_count()
    if not args.smoke and not gpus:
        print("The GPU check needs a CUDA GPU (torch sees none); --smoke runs it on the CPU.", file=sys.stderr)
        return 2
    args.device = "cpu" if args.smoke else "cuda"
    started = time.monotonic()
    data = _data(args)
    if data is None:
        print(f"Skipped: the brain and spine data are not in {args.data}.", file=sys.stderr)
        return 0
    work = args.work / "runs"
    work.mkdir(parents=True, exist_ok=True)
    result = {"about": about(), "settings": {"smoke": args.smoke, "budget_s": args.budget_s, "gpus": gpus,
                                             "device": args.device, "threads": args.threads},
              "train": [], "segment": [], "ddp": [], "skipped": []}
    models = {r: work / f"brain_{r.replace(' ', '')}" for r in ("2 mm", "1 mm")}
    ct_model = work / "ct"
    steps = [(f"train {r}", lambda r=r: result["train"].append(_train(args, data, r, models[r]))) for r in models]
    steps += [("train CT (minimal)", lambda: distillseg(
                  "train", "--atlas", data["ct"]["image"], "--atlas-labels", data["ct"]["labels"], "--unlabeled",
                  data["ct"]["image"], "--out", ct_model, "--augmenter-iterations", 0, "--refine-iterations", 0,
                  "--iterations", 1, device=args.device, threads=args.threads)),
              ("segment brain", lambda: result["segment"].append(
                  _segment(args, "brain", models["1 mm"], data["atlas"], data["scan"], work))),
              ("segment CT", lambda: result["segment"].append(
                  _segment(args, "CT", ct_model, data["ct"]["image"], data["ct"]["image"], work))),
              ("DDP", lambda: result.update(
                  ddp=_ddp(args, data, work, max(gpus, 1), next(iter(result["train"]), None))))]
    for title, step in steps:
        if not args.smoke and time.monotonic() - started > args.budget_s:
            result["skipped"].append(title)
            log(f"{title}: skipped (over the {args.budget_s:g} s budget)")
            continue
        log(title)
        step()
        save_run(result, started, args, lambda done: write_report(done, out))
    log(f"report in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
