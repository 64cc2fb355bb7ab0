"""IncrementalLap's part of the speed benchmark: training step times, diffusion replay throughput and per-frame
segmentation, measured through the real CLI (``python -m distillseg lap …``) on SYNTHETIC frames
(``lap demo-data``) at the class-incremental benchmark's working size, 128×160; plus FLOPs of the two networks
counted in-process for the GPU plan on paper.

Weights do not change what a step or a forward pass costs, so the models come from a few iterations. The
measurements (``lap_costs``):

- ``lap train`` (3 structures, batch 8): median seconds per segmenter step and per diffusion step;
- ``lap learn --strategy ours`` (1 new structure, 16 replayed frames, batch 8): the replay generation (DDIM, 50
  steps) and the median seconds per step of ours (real + replayed frames, distillation, contrastive, Dice);
- ``lap sample --n 32``: frames per second of DDIM sampling, from the second batch of 16 (the first carries set-up);
- ``lap segment`` on 8 frames: mean seconds per frame after the first.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from .estimates import GPU_ASSUMPTIONS, count_flops
from .report import fmt, section
from .run import distillseg, run_measured

SIZE = (128, 160)          # working size (H, W) of the class-incremental benchmark's synthetic protocol
FRAME_SIZE = (144, 180)    # generated frames before the black-border crop, as in that protocol
SAMPLE_BATCH = 16          # frames per DDIM batch (distillseg.lap.diffusion.sample_frames)


def _seconds_per_step(run, stage: str, after: int) -> float | None:
    """Mean seconds per step of ``stage`` from its first progress event at step >= ``after`` to its last (the
    engine emits at most two events a second, so consecutive steps are not always both reported)."""
    points = run.step_times(stage, after)
    if len(points) < 2 or points[-1][0] <= points[0][0]:
        return None
    return (points[-1][1] - points[0][1]) / (points[-1][0] - points[0][0])


def _frames_per_s(run, stage: str) -> float | None:
    """Sampling throughput after the first batch of ``SAMPLE_BATCH`` frames (which carries the set-up)."""
    seconds = _seconds_per_step(run, stage, SAMPLE_BATCH)
    return 1 / seconds if seconds else None


def _row(name: str, run, **figures) -> dict:
    return {"name": name, **run.summary(), **run.status(), **figures}


def lap_costs(work: Path, threads: int, steps: int, smoke: bool) -> list[dict]:
    """The measurements listed in the module docstring, one row each."""
    lap = lambda verb, *args: distillseg(verb, *args, threads=threads, method="lap", check=False)  # noqa: E731
    folder = work / "lap"
    data, models = folder / "frames", folder / "models"
    shutil.rmtree(models, ignore_errors=True)
    if not (data / "dataset.json").is_file():
        run_measured([sys.executable, "-m", "distillseg", "lap", "demo-data", "--out", data, "--patients", 3,
                      "--frames-per-patient", 8, "--size", *FRAME_SIZE, "--progress", "none"])
    iterations = 2 if smoke else steps
    base, step1 = models / "base", models / "ours_step1"
    train = lap("train", "--data", data, "--patients", "01,02", "--classes", "liver,stomach,colon", "--out", base,
                "--size", *SIZE, "--iterations", iterations, "--diffusion-iterations", iterations,
                "--checkpoint-every", 1000)
    rows = [_row("lap train (3 structures, batch 8)", train,
                 segmenter_step_s=train.median_step_seconds("segmenter"),
                 diffusion_step_s=train.median_step_seconds("diffusion"))]
    if train.returncode:
        return rows
    learn = lap("learn", "--model", base, "--data", data, "--patients", "03", "--new-classes", "spleen",
                "--strategy", "ours", "--replay", 2 * SAMPLE_BATCH, "--out", step1, "--iterations", iterations,
                "--diffusion-iterations", 0, "--checkpoint-every", 1000)
    rows.append(_row("lap learn --strategy ours (+1 structure, 32 replayed frames, batch 8)", learn,
                     segmenter_step_s=learn.median_step_seconds("segmenter"),
                     replay_frames_per_s=_frames_per_s(learn, "replay")))
    sample = lap("sample", "--model", base, "--n", 2 * SAMPLE_BATCH, "--out", folder / "samples")
    rows.append(_row("lap sample --n 32 (DDIM, 50 steps)", sample,
                     sample_frames_per_s=_frames_per_s(sample, "sample")))
    frames = folder / "frames_to_segment"
    shutil.rmtree(frames, ignore_errors=True)
    frames.mkdir(parents=True)
    for image in sorted((data / "multilabel" / "03").glob("image*.png"))[:8]:
        shutil.copy(image, frames / image.name)
    segment = lap("segment", "--model", step1 if learn.returncode == 0 else base, "--input", frames,
                  "--output", folder / "segmented")
    rows.append(_row("lap segment (8 frames)", segment, frame_s=_seconds_per_step(segment, "segment", 1)))
    return rows


def lap_network_figures() -> dict:
    """FLOPs of one forward pass of the segmenter (one 128×160 frame, 4 structures) and of the diffusion UNet (one
    64×80 frame, one denoising step), counted on the real networks."""
    import torch

    from distillseg.lap.diffusion import DiffusionConfig, build_diffusion_net
    from distillseg.lap.segmenter import Segmenter, SegmenterConfig

    config = DiffusionConfig()
    with torch.no_grad():
        segmenter = count_flops(Segmenter(SegmenterConfig(), 5).eval(), [torch.rand(1, 3, *SIZE)])
        diffusion = count_flops(build_diffusion_net(config).eval(),
                                [torch.rand(1, 3, *config.size), torch.tensor([500])])
    return {"segmenter_size": list(SIZE), "segmenter_forward_flops": segmenter,
            "diffusion_size": list(config.size), "diffusion_forward_flops": diffusion,
            "sample_steps": config.sample_steps}


def lap_section(rows: list[dict], figures: dict | None) -> list[str]:
    """Markdown of the measured rows and, when counted, the GPU estimate of sampling and segmenting."""
    cells = []
    for row in rows:
        figures_text = "; ".join(text for text in (
            row.get("segmenter_step_s") and f"segmenter step {fmt(row['segmenter_step_s'], 2, ' s')}",
            row.get("diffusion_step_s") and f"diffusion step {fmt(row['diffusion_step_s'], 2, ' s')}",
            row.get("replay_frames_per_s") and f"replay {fmt(row['replay_frames_per_s'], 2, ' frames/s')}",
            row.get("sample_frames_per_s") and f"{fmt(row['sample_frames_per_s'], 2, ' frames/s')}",
            row.get("frame_s") and f"{fmt(row['frame_s'], 3, ' s/frame')}") if text)
        cells.append([row["name"], figures_text if row["ok"] else f"failed: {row['error']}",
                      fmt(row["seconds"], 1, " s"), fmt(row["peak_rss_mb"] / 1024, 2, " GB")])
    lines = section("5. IncrementalLap: training steps, diffusion replay, segmentation (measured, CPU)",
                    "`distillseg lap …` on SYNTHETIC frames (`lap demo-data`, 3 patients × 8 frames) at the "
                    f"class-incremental benchmark's working size {SIZE[0]}×{SIZE[1]} (diffusion grid 64×80, DDIM 50 "
                    "steps); models from a few iterations (weights do not change the cost). Step = median seconds "
                    "per iteration after the first; sampling throughput from the second batch of 16 frames.",
                    ["command", "measured", "whole command", "peak RSS"], cells)
    if figures:
        a = GPU_ASSUMPTIONS["H100 SXM"]
        speed = a["bf16_dense_tflops"] * 1e12 * a["conv3d_efficiency"]
        per_frame = figures["diffusion_forward_flops"] * figures["sample_steps"]
        lines += ["GPU, ESTIMATES ON PAPER (FLOPs counted on the real networks, H100 assumptions of section 4): "
                  f"diffusion UNet {figures['diffusion_forward_flops'] / 1e9:.2f} GFLOP per frame and step → "
                  f"{per_frame / 1e9:.1f} GFLOP per sampled frame → {per_frame / speed * 1e3:.2f} ms per frame "
                  f"(≈ {speed / per_frame:,.0f} frames/s, compute bound); segmenter "
                  f"{figures['segmenter_forward_flops'] / 1e9:.2f} GFLOP per {SIZE[0]}×{SIZE[1]} frame → "
                  f"{figures['segmenter_forward_flops'] / speed * 1e6:.0f} µs. Small 2D batches rarely reach these "
                  "rates (kernel launches dominate); read them as lower bounds.", ""]
    return lines
