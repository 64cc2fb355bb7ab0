"""Speed and scale of OneShotSeg on this machine, through the real CLI, with GPU figures planned on paper.

1. **Segment cost at 3 sizes**: the whole ``distillseg oneshot segment`` command (time, peak memory of the process)
   on a 2 mm brain (80×96×112), a 1 mm brain (160×192×224) — each with a model whose working grid is the scan's
   own (``--spacing atlas``) — and a 512×512×300 CT-like volume (the spine CT resampled, HU-like int16) with a model
   at ``--spacing auto``; the default (windows of the student's training patch, 64³), whole grid (bf16 autocast and
   fp32) and another sliding window, and with ``--max-memory`` (the engine picks the window from its memory plan;
   the report checks the measured peak against the budget). The models come from a minimal training (no augmenter
   steps, no instance optimisation, one student step on the default patch): weights do not change the cost of a
   forward pass. Training runs skip the instance optimisation too (not a step measured here).
2. **Training steps**: ``distillseg oneshot train`` on the OASIS → vxm brains at 2 mm and at full size (1 mm), fp32 /
   bf16 autocast, with and without ``--checkpointing``: median seconds per augmenter and student step, and the
   process's peak memory in each stage. The 1 mm runs get ``--max-memory`` = ``--train-cap-gb``, so the engine's own
   plan refuses what would not fit (without that option in the engine: a 1 mm setting whose memory, extrapolated
   from 2 mm × 8, exceeds the cap is not run); an address-space limit on the child is the backstop.
3. **DDP throughput**: the same 2 mm training with one process (2 threads) and with
   ``torchrun --standalone --nproc_per_node=2`` (gloo, 1 thread each), same global batch.
4. **GPU plan (estimates, not measurements)**: FLOPs, saved activations and memory traffic counted on the real
   networks (``harness.estimates``), turned into H100 times and GPU memory with stated assumptions.
5. **IncrementalLap** (``harness.speed_lap``): ``lap train`` segmenter and diffusion step times, ``lap learn
   --strategy ours`` step time and replay generation, ``lap sample`` throughput (DDIM, 50 steps), ``lap segment``
   per frame, at 128×160 on SYNTHETIC frames; FLOPs of both networks for the GPU plan.
6. **Warm worker** (``harness.speed_warm``): on the 1 mm brain, the ``segment`` command (cold), ``distillseg worker``'s
   second scan with the same model (warm: what each later Segment press in Slicer costs) and the worker's peak
   memory, ANTs SyN (40, 20) at 2 mm and SyN at 1 mm on the same pair; warm labels checked against the cold ones.

One command from the repository root (about 45 min on 2 CPU cores)::

    .venv/bin/python -m benchmarks.speed_scale

writes ``benchmarks/results/speed_scale/{report.md,results.json,segment_cost.png}``. ``--parts`` redoes only some
parts; the others keep the figures of the report being rewritten, and the report names the run behind each part.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from distillseg.contract.events import DESCRIPTION, DEVICE, PRECISION

from benchmarks.harness.cli import benchmark_parser, log, rebuilt_only, report_folder, save_run
from benchmarks.harness.estimates import network_figures
from benchmarks.harness.paths import REPO
from benchmarks.harness.report import about, write_json, write_text
from benchmarks.harness.run import distillseg
from benchmarks.harness.scale_cases import brain_pair, prepare_cases
from benchmarks.harness.speed_lap import lap_costs, lap_network_figures
from benchmarks.harness.speed_report import markdown, plot
from benchmarks.harness.speed_warm import warm_costs

NAME = "speed_scale"
# The per-pair instance optimisation between the two training stages is not a step being timed here, and at 1 mm its
# 100 whole-grid iterations would take a quarter of an hour per training.
NO_REFINE = ["--refine-iterations", 0]
GB = 2**30


# ----------------------------------------------------------------------------------------------- data
def brain_training(data: Path) -> list:
    """``train``'s inputs for the training measurements: the OASIS atlas and labels, the vxm scan unlabelled."""
    oasis, seg35, vxm = brain_pair(data)
    return ["--atlas", oasis, "--atlas-labels", seg35, "--unlabeled", vxm, *NO_REFINE]


def _shape(path: Path) -> list[int]:
    import nibabel as nib

    return list(nib.load(path).shape[:3])



# ----------------------------------------------------------------------------------------- measurements
def segment_costs(cases: list[dict], work: Path, threads: int, smoke: bool, options: dict) -> list[dict]:
    rows = []
    for case in cases:
        model = work / "models" / case["name"].replace(" ", "_").replace("×", "x")
        if not (model / "manifest.json").is_file():
            distillseg("train", "--atlas", case["atlas"], "--atlas-labels", case["labels"], "--unlabeled",
                       case["unlabeled"], "--out", model, "--spacing", case["spacing"], "--augmenter-iterations", 0,
                       "--refine-iterations", 0, "--iterations", 1, threads=threads)
        manifest = json.loads((model / "manifest.json").read_text())
        grid = manifest["preprocessing"]["grid"]["shape"]
        patch = manifest["training"]["options"]["synthesis"]["patch"] or grid
        # Default: windows of the student's training patch (the CLI's default 64³, clamped to the grid).
        modes = [("trained-patch windows " + "×".join(map(str, patch)), "auto", []),
                 ("whole grid", "auto", ["--sliding-window", *grid]),
                 ("whole grid", "fp32", ["--sliding-window", *grid]),
                 ("sliding window " + "×".join(map(str, case["window"])), "auto",
                  ["--sliding-window", *case["window"]])]
        if options["segment"].get("--max-memory"):  # the window the engine picks itself from a memory budget
            modes.append((f"budget --max-memory {case['budget']}", "auto", ["--max-memory", case["budget"]]))
        for mode, precision, extra in modes[:1] if smoke else modes:
            output = work / "segmentations" / f"{model.name}.nii.gz"
            output.parent.mkdir(parents=True, exist_ok=True)
            run = distillseg("segment", "--model", model, "--input", case["input"], "--output", output,
                             "--precision", precision, *extra, threads=threads, check=False)
            device = next(iter(run.of_kind(DEVICE)), {})
            rows.append({"case": case["name"], "input_shape": _shape(case["input"]), "working_grid": grid,
                         "mode": mode, "precision": device.get(PRECISION, precision), **run.summary(),
                         "device": device.get(DESCRIPTION), **run.status(),
                         "in_process_seconds": (run.result.get("seconds") or [None])[0],
                         "engine_peak_memory_mb": run.result.get("peak_memory_mb")})
            log(f"segment {case['name']} {mode} {precision}: {run.seconds:.1f} s, {run.peak_rss_mb:.0f} MB")
    return rows


def training_steps(data: Path, work: Path, threads: int, steps: int, cap_gb: float, smoke: bool,
                   options: dict) -> list[dict]:
    common = [*brain_training(data), "--iterations", steps]
    rows, at_2mm = [], {}
    settings = [(s, p, c) for s in ("2", "atlas") for p in ("fp32", "bf16") for c in (False, True)]
    for spacing, precision, checkpointing in settings[:1] if smoke else settings:
        resolution = "1 mm" if spacing == "atlas" else "2 mm"
        row = {"resolution": resolution, "precision": precision, "checkpointing": checkpointing}
        augmenter_steps = 0 if checkpointing else steps  # checkpointing concerns the teacher and student only
        budget = []
        if spacing == "atlas":
            small = at_2mm.get((precision, checkpointing), {})
            extrapolated = 8 * max(small.get("stage_peaks_mb", {}).values(), default=0) / 1024
            row["extrapolated_peak_gb"] = round(extrapolated, 1)
            if options["train"].get("--max-memory"):
                budget = ["--max-memory", f"{cap_gb:g}G"]  # the engine's plan decides; RLIMIT_AS is the backstop
            elif not small or extrapolated > cap_gb:
                rows.append({**row, "ok": False, "error": f"not run: extrapolated from 2 mm ({extrapolated:.1f} GB) "
                                                         f"exceeds the {cap_gb:g} GB cap for this shared machine"})
                continue
        out = work / "train_runs" / f"{resolution}_{precision}_{checkpointing}".replace(" ", "")
        shutil.rmtree(out, ignore_errors=True)
        run = distillseg("train", *common, "--out", out, "--spacing", spacing, "--precision", precision,
                         "--augmenter-iterations", augmenter_steps, *(["--checkpointing"] if checkpointing else []),
                         *budget, threads=threads, check=False, address_space_limit=int((cap_gb + 2) * GB))
        row.update({**run.summary(), **run.status(),
                    "augmenter_step_s": run.median_step_seconds("augmenter"),
                    "distill_step_s": run.median_step_seconds("distill"),
                    "device": next((e.get(DESCRIPTION) for e in run.of_kind(DEVICE)), None)})
        if run.returncode == 0:
            row["working_grid"] = json.loads((out / "manifest.json").read_text())["preprocessing"]["grid"]["shape"]
        if resolution == "2 mm":
            at_2mm[(precision, checkpointing)] = row
        rows.append(row)
        log(f"train {resolution} {precision} ckpt={checkpointing}: {row.get('distill_step_s')} s/step")
    return rows


def ddp_throughput(data: Path, work: Path, steps: int, smoke: bool) -> list[dict]:
    common = [*brain_training(data), "--spacing", 2, "--batch-size", 2, "--batch-pairs", 2,
              "--augmenter-iterations", steps, "--iterations", steps]
    torchrun = Path(sys.executable).with_name("torchrun")
    rows = []
    for processes in (1, 2):
        out = work / "ddp_runs" / f"p{processes}"
        shutil.rmtree(out, ignore_errors=True)
        launcher = None if processes == 1 else [torchrun, "--standalone", f"--nproc_per_node={processes}"]
        run = distillseg("train", *common, "--out", out, threads=2 // processes, launcher=launcher, check=False)
        augmenter, student = run.median_step_seconds("augmenter"), run.median_step_seconds("distill")
        rows.append({"processes": processes, "threads_each": 2 // processes, "global_batch": 2, **run.summary(),
                     **run.status(),
                     "augmenter_step_s": augmenter, "distill_step_s": student,
                     "augmenter_pairs_per_s": 2 / augmenter if augmenter else None,
                     "distill_samples_per_s": 2 / student if student else None,
                     "backend": "gloo (CPU)" if processes > 1 else "single process"})
        log(f"ddp {processes}: {student} s/step")
    return rows


def engine_options() -> dict:
    """Which scale-related options the engine's CLI offers now (gaps are reported, not patched here)."""
    found = {}
    for verb in ("train", "segment"):
        text = subprocess.run([sys.executable, "-m", "distillseg", "oneshot", verb, "--help"], cwd=REPO,
                              capture_output=True, text=True).stdout
        found[verb] = {o: o in text for o in ("--max-memory", "--sliding-window", "--checkpointing", "--patch-size",
                                              "--compile", "--precision")}
    return found


def write_report(result: dict, out: Path) -> None:
    """``results.json``, the cost plot and ``report.md`` in ``out``."""
    write_json(out / "results.json", result)
    plot(result, out / "segment_cost.png")
    write_text(out / "report.md", markdown(result))


def run_of(about: dict) -> dict:
    """Command, date, engine commit and load of one run, for the report line naming which run measured a part."""
    return {"command": about["command"], "date": about["date"],
            "commit": about["software"].get("distillseg_commit"), "load": about.get("load_average_at_start")}


def earlier_run(previous: dict, key: str) -> dict:
    """The run that measured ``key`` in a results file from before parts recorded their run: its own run if it
    ran that part, else an unrecorded earlier one."""
    ran = {"network_figures" if part == "gpu" else part for part in previous.get("settings", {}).get("parts", [])}
    if key in ran:
        return run_of(previous["about"])
    return {"command": f"an earlier run of benchmarks.{NAME} (not recorded)", "date": None, "commit": None,
            "load": None}


def kept_figures(previous: dict) -> dict:
    """The measured parts of an earlier results file, with ``measured_by`` naming the run that measured each, so
    a run with ``--parts`` redoes only those parts and the report still says where every figure came from."""
    kept = {"measured_by": {}}
    for key in ("warm", "segment", "train", "ddp", "lap", "network_figures"):
        if key in previous:
            kept[key] = previous[key]
            kept["measured_by"][key] = previous.get("measured_by", {}).get(key) or earlier_run(previous, key)
    return kept


def main(argv: list[str] | None = None) -> int:
    parser = benchmark_parser(__doc__, NAME, "speed_scale_benchmark", smoke="one setting per part",
                              data="the shared data folder (brain/, spine_ct/)")
    parser.add_argument("--train-steps", type=int, default=3, help="steps per stage in the training measurements")
    parser.add_argument("--train-cap-gb", type=float, default=14.0,
                        help="do not start a training measurement extrapolated to need more than this")
    parser.add_argument("--lap-steps", type=int, default=6, help="iterations per stage in the lap measurements")
    parser.add_argument("--parts", default="warm,segment,train,ddp,lap,gpu", help="which parts to run (comma list)")
    args = parser.parse_args(argv)
    out = report_folder(args, NAME)
    if rebuilt_only(args, out, write_report):
        return 0
    parts = set(args.parts.split(","))
    started = time.monotonic()
    cases = prepare_cases(args.data, args.work)
    if cases is None:
        print(f"Skipped: the brain and spine data are not in {args.data}.", file=sys.stderr)
        return 0
    # Parts not rerun keep the figures of the report being rewritten: on a fresh clone, the committed one.
    previous = json.loads((out / "results.json").read_text()) if (out / "results.json").is_file() else {}
    result = {"about": about(), "settings": {"threads": args.threads, "train_steps": args.train_steps,
                                             "lap_steps": args.lap_steps,
                                             "train_cap_gb": args.train_cap_gb, "smoke": args.smoke,
                                             "parts": sorted(parts)},
              "engine_options": engine_options()}
    result.update(kept_figures(previous))
    # The report is rewritten after every part, so a stopped run keeps what it measured.
    steps = [("warm", lambda: warm_costs(args.data, args.work, args.threads, args.smoke, cases)),
             ("segment", lambda: segment_costs(cases, args.work, args.threads, args.smoke,
                                               result["engine_options"])),
             ("ddp", lambda: ddp_throughput(args.data, args.work, args.train_steps, args.smoke)),
             ("train", lambda: training_steps(args.data, args.work, args.threads, args.train_steps,
                                              args.train_cap_gb, args.smoke, result["engine_options"])),
             ("lap", lambda: lap_costs(args.work, args.threads, args.lap_steps, args.smoke)),
             # In-process and several GB: last, because a child's ru_maxrss starts at this process's peak.
             ("gpu", lambda: {**network_figures(36), "lap": lap_network_figures()})]
    for part, measure in steps:
        if part in parts:
            key = "network_figures" if part == "gpu" else part
            result[key] = measure()
            result["measured_by"][key] = run_of(result["about"])
            save_run(result, started, args, lambda done: write_report(done, out))
    log(f"report in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
