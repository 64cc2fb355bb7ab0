"""The class-incremental protocols and the data each one needs.

``endoscapes`` (``benchmarks.lap_endoscapes``): real laparoscopic frames, the train and val videos of
Endoscapes-Seg50 in ../shared/data, read where they lie (the engine's generic folder layout). ``synthetic``
(``benchmarks.lap_incremental``, a fast pipeline check): generated scenes from ``distillseg lap demo-data``.
The earlier brain/spine "proxy" is retired: its steps shared one subject and its test slices came from a training
scan.
"""

from __future__ import annotations

from pathlib import Path

# Iterations and learning rates chosen so that the whole benchmark fits ~1 hour on the 2-core development CPU.
# ``joint`` gets as many iterations as the base step and all incremental steps together.
# The synthetic protocol keeps the settings its committed report was made with (cross-entropy alone in the base step).
_SYNTHETIC_SETTINGS = {"batch_size": 8, "step_batch_size": 8, "base_iterations": 300, "step_iterations": 120,
                       "joint_iterations": 660, "diffusion_iterations": 150, "step_lr": 1e-3,
                       "train_extra": ["--dice-weight", 0], "step_extra": ["--class-balance", 0]}
# Endoscapes: sized so that the whole benchmark (a base step, 11 variants x 2 steps, joint) fits 90 minutes on 2 CPU
# cores; joint sees 12000 frames (1500 steps of 8), more than the base step and one variant's two steps together
# (6400 + 2 x 1200).
# Replay: 48 frames per step sampled with 25 DDIM steps (the defaults, one frame per new frame and 50 steps, cost
# about 4 CPU-minutes per step and variant).
# Learning steps, every strategy alike: learning rate 3e-4 and class-balanced cross-entropy (--class-balance 1),
# chosen with --dev-steps on held-out train videos (benchmarks/results/lap_endoscapes_dev_steps): at 1e-3 ours lost
# the tool in step 1 (worst old drop -32 IoU points), at 3e-4 it lost 0.1; class balance 1 was a tie in the mean
# over all six structures but the only setting that gave the new structures pixels in every seed. Their 1200 frames
# per step go in 300 steps of 4 (benchmarks/results/lap_endoscapes_dev_steps_budget, same cost as 150 steps of 8):
# +1.1 and +1.6 points by seed, the new structures learned better; 600 steps of 2 were +0.4 more at 22 % more time,
# 525 steps on 64x128 windows with --focus a tie with 150 of 8. (A step's diffusion model, for the next step's
# replay, trains on batches of the same size: the dev steps measured that too.)
_ENDOSCAPES_SETTINGS = {"batch_size": 8, "step_batch_size": 4, "base_iterations": 800, "step_iterations": 300,
                        "joint_iterations": 1500, "diffusion_iterations": 300, "step_lr": 3e-4,
                        "train_extra": ["--sample-steps", 25], "step_extra": ["--replay", 48, "--class-balance", 1]}

# Endoscapes-Seg50's official video split (frames.csv). The train videos are dealt round-robin, in number order,
# into three disjoint groups, one per learning step: every step learns from patients no other step saw. Segmenter
# settings are compared on 6 train videos held out of training (lap_endoscapes' --dev), never on the val videos.
ENDOSCAPES_TRAIN_VIDEOS = ["4", "5", "10", "13", "14", "36", "38", "39", "43", "48", "52", "56", "57", "65", "71",
                           "72", "75", "81", "82", "83", "84", "90", "98", "100", "102", "105", "110", "116", "117",
                           "119"]
ENDOSCAPES_VAL_VIDEOS = ["126", "131", "137", "141", "142", "144", "146", "153", "156", "159"]
_VIDEO_GROUPS = [ENDOSCAPES_TRAIN_VIDEOS[k::3] for k in range(3)]
# Every fifth train video is held out of the settings comparisons (``--dev``, ``--dev-steps``); they train on the
# other 24 ("fitting" videos) and are scored on these 6.
ENDOSCAPES_DEV_VIDEOS = ENDOSCAPES_TRAIN_VIDEOS[::5]
ENDOSCAPES_FITTING_VIDEOS = [v for v in ENDOSCAPES_TRAIN_VIDEOS if v not in ENDOSCAPES_DEV_VIDEOS]
ENDOSCAPES_FOLDER = Path("laparoscopy") / "endoscapes_seg50"

PROTOCOLS = {
    "synthetic": {
        "description": "synthetic laparoscopic-looking scenes (DSAD layout), 128x160",
        "size": [128, 160],
        "frame_size": [144, 180],
        "patients": 16,
        "frames_per_patient": 20,
        "steps": [
            {"classes": ["liver", "stomach", "colon"], "patients": ["01", "02", "03", "04"]},
            {"classes": ["spleen"], "patients": ["05", "06", "07"]},
            {"classes": ["abdominal_wall"], "patients": ["08", "09", "10"]},
            {"classes": ["vesicular_glands"], "patients": ["11", "12", "13"]},
        ],
        "test_patients": ["14", "15", "16"],
        "eval_source": "multilabel",
        "settings": _SYNTHETIC_SETTINGS,
    },
    "endoscapes": {
        "description": "Endoscapes-Seg50, real laparoscopic cholecystectomy frames, 128x224",
        "size": [128, 224],
        "steps": [
            {"classes": ["gallbladder", "tool"], "patients": _VIDEO_GROUPS[0]},
            {"classes": ["cystic_artery", "cystic_duct"], "patients": _VIDEO_GROUPS[1]},
            {"classes": ["cystic_plate", "calot_triangle"], "patients": _VIDEO_GROUPS[2]},
        ],
        "test_patients": ENDOSCAPES_VAL_VIDEOS,
        "eval_source": "auto",
        # Frame 153_32700 (a val video) holds a value its label table does not name: left out with a warning.
        "data_options": ["--unknown-values", "skip"],
        "settings": _ENDOSCAPES_SETTINGS,
    },
}

SYNTHETIC_SEED = 2025  # the benchmark's scenes; settings are chosen on scenes of other seeds (lap_validation)


def build_synthetic_data(work: Path, protocol: dict, lap, seed: int = SYNTHETIC_SEED) -> Path:
    data = work / "demo"
    if not (data / "dataset.json").is_file():
        lap("demo-data", "--out", data, "--patients", protocol["patients"], "--frames-per-patient",
            protocol["frames_per_patient"], "--size", *protocol["frame_size"], "--seed", seed, "--progress", "none")
    return data
