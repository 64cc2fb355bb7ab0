"""``distillseg lap …`` verbs (IncrementalLap): demo-data, train, learn, segment, evaluate, sample, restore.

The verbs are in ``distillseg.lap.jobs``, imported only when one runs, so ``--help`` is instant.
"""

from __future__ import annotations

import argparse

from distillseg.common import option_types as types
from distillseg.common.cli_options import (add_checkpoint_options, add_loop_options, add_model_option,
                                           add_progress_option, add_runtime_options, add_seed_option, lazy_verb)

DEFAULT_SIZE = (256, 320)
_JOBS = "distillseg.lap.jobs"
_WEIGHT = types.real_number(0)
_WORKING_SIZE = types.multiple_of(32, 32, types.MAX_GRID)


def _data_options(parser, training: bool = True) -> None:
    group = parser.add_argument_group("data")
    group.add_argument("--data", required=True, metavar="DIR",
                       help="DSAD-layout folder (<structure>/<NN>/imageXX.png + maskXX.png, multilabel/<NN>/...), "
                            "a folder with images/, masks/ (index masks) and labels.json, or the unpacked "
                            "Endoscapes2023 release (train_seg/, val_seg/, test_seg/ and semseg/); in index masks "
                            "255 means 'no label' (left out of training and scores)")
    group.add_argument("--source", default="auto", choices=["auto", "structures", "multilabel"],
                       help="DSAD: per-structure folders, the multilabel folder, or auto = per-structure folders "
                            "when every structure has one (default: auto)")
    group.add_argument("--split", default="all", choices=["all", "train", "val", "test"],
                       help="DSAD's standard split by surgery (test 02 07 11 13 14 18 20 32, val 03 21 26, train "
                            "the rest), or Endoscapes' official <split>_seg folder; all = every surgery or video "
                            "(default: all)")
    group.add_argument("--patients", type=types.name_list, default=None, metavar="NN,NN",
                       help="only these surgeries/patients (comma-separated folder names); overrides --split")
    group.add_argument("--unknown-values", default="refuse", choices=["refuse", "skip"],
                       help="an index mask holding a value the label table does not name: refuse (stop, naming the "
                            "mask) or skip (leave that frame out, with a warning naming it) (default: refuse)")


def _training_options(parser, iterations: int, lr: float) -> None:
    group = parser.add_argument_group("training")
    add_loop_options(group, iterations=iterations, lr=lr, batch_size=8, what="segmenter (AdamW, polynomial decay)")
    group.add_argument("--zoom", type=types.real_number(0.25, 1), default=1.0, metavar="F",
                       help="zoom augmentation: random crops with sides F..1 of the frame's, resized to the working "
                            "size (small structures cover more pixels); 1 = none (default: %(default)s)")
    group.add_argument("--crop", type=_WORKING_SIZE, nargs=2, default=None, metavar=("H", "W"),
                       help="train on random H x W windows of the working-size frames (multiples of 32): the working "
                            "grid's detail for small structures at the cost of a smaller grid; segmenting still sees "
                            "whole frames (default: whole frames; lap learn: the base step's crop)")
    group.add_argument("--focus", type=types.real_number(0, 1), default=0.0, metavar="P",
                       help="share of the training windows (--zoom < 1 or --crop) centred on a pixel of a structure "
                            "the frame shows, the structure drawn uniformly among the frame's: a small one (cystic "
                            "artery, 0.5 %% of the pixels) is then seen as often as the gallbladder; 0 = random "
                            "places (default: %(default)s)")
    group.add_argument("--diffusion-iterations", type=types.whole_number(0), default=600,
                       help="iterations of this step's replay diffusion model; 0 = none, later steps then cannot "
                            "replay this step's patients (default: %(default)s)")
    group.add_argument("--sample-steps", type=types.whole_number(1, 1000), default=50,
                       help="DDIM steps when replaying (default: %(default)s)")
    add_checkpoint_options(group, "--out")


def add_lap_verbs(subparsers) -> None:
    lap = subparsers.add_parser("lap", help="IncrementalLap: laparoscopic frames, structures learned step by step")
    verbs = lap.add_subparsers(dest="verb", required=True, metavar="VERB")

    demo = verbs.add_parser("demo-data", help="write SYNTHETIC laparoscopic-looking frames in the DSAD layout")
    demo.add_argument("--out", required=True, metavar="DIR", help="folder to write (an existing one is replaced only if this command wrote it)")
    demo.add_argument("--patients", type=types.whole_number(1, 99), default=8,
                      help="number of patients/surgeries (default: %(default)s)")
    demo.add_argument("--frames-per-patient", type=types.whole_number(1, 99), default=12,
                      help="frames per patient (default: %(default)s)")
    demo.add_argument("--size", type=types.whole_number(32, types.MAX_GRID), nargs=2, default=(240, 320),
                      metavar=("H", "W"), help="frame height and width in pixels (default: 240 320)")
    add_seed_option(demo)
    add_progress_option(demo)
    demo.set_defaults(verb_function=lazy_verb(_JOBS, "run_demo_data"))

    train = verbs.add_parser("train", help="learn the first structures (step 0); on all data = the joint bound")
    _data_options(train)
    train.add_argument("--classes", type=types.name_list, required=True, metavar="a,b,c",
                       help="structures to learn, in value order")
    train.add_argument("--out", required=True, metavar="MODEL", help="model bundle folder to write")
    train.add_argument("--size", type=_WORKING_SIZE, nargs=2, default=DEFAULT_SIZE, metavar=("H", "W"),
                       help="working size, multiples of 32 (default: %(default)s)")
    train.add_argument("--backbone", default="resnet18", choices=["resnet10", "resnet18", "resnet34"],
                       help="ResNet encoder of the MONAI FlexibleUNet (default: resnet18)")
    train.add_argument("--encoder-weights", default=None, metavar="FILE|imagenet",
                       help="pretrained encoder: a .safetensors ResNet state dict, or 'imagenet' (downloaded once "
                            "into ~/.cache/distillseg); default: random initialisation")
    train.add_argument("--dice-weight", type=_WEIGHT, default=1.0,
                       help="soft Dice of every structure added to the cross-entropy (small structures weigh as "
                            "much as large ones); 0 = cross-entropy alone (default: %(default)s)")
    train.add_argument("--class-balance", type=types.real_number(0, 1), default=0.5, metavar="P",
                       help="weigh each structure's cross-entropy by its pixel share to the power -P over the "
                            "training frames: 1 = inverse frequency, 0.5 = its square root (the default: on held-out "
                            "Endoscapes train videos the first setting that learned all six structures), 0 = "
                            "unweighted")
    _training_options(train, iterations=600, lr=1e-3)
    add_runtime_options(train)
    train.set_defaults(verb_function=lazy_verb(_JOBS, "run_train"))

    learn = verbs.add_parser("learn", help="learn new structures from new patients' frames (old frames not needed)")
    add_model_option(learn, "current model bundle")
    _data_options(learn)
    learn.add_argument("--new-classes", type=types.name_list, required=True, metavar="d[,e]", help="structures to add")
    learn.add_argument("--out", required=True, metavar="MODEL2", help="new model bundle folder")
    learn.add_argument("--strategy", default="ours", choices=["ours", "finetune", "mib", "plop"],
                       help="ours = diffusion replay + MiB + POD + contrastive; finetune, mib, plop for comparison "
                            "(default: ours)")
    learn.add_argument("--replay", type=types.whole_number(0, 100_000), default=None, metavar="N",
                       help="synthetic frames to replay; 0 = none (default: as many as new frames)")
    learn.add_argument("--eval-data", default=None, metavar="DIR",
                       help="labelled folder to score the model on before and after (stored in the history)")
    weights = learn.add_argument_group("loss weights (default: the strategy's)")
    weights.add_argument("--kd-weight", type=_WEIGHT, default=None, help="unbiased output distillation (ours/mib: 10)")
    weights.add_argument("--pod-weight", type=_WEIGHT, default=None, help="pooled feature distillation (0.01)")
    weights.add_argument("--contrastive-weight", type=_WEIGHT, default=None, help="pixel InfoNCE (ours: 0.1)")
    weights.add_argument("--dice-weight", type=_WEIGHT, default=None, help="soft Dice of the new classes (ours: 1)")
    weights.add_argument("--confidence", type=types.real_number(0, 1), default=None,
                         help="pseudo-label threshold (0.7)")
    weights.add_argument("--pseudo-labels", action=argparse.BooleanOptionalAction, default=None,
                         help="label the old structures on the new frames where the previous model is confident "
                              "(ours, plop: on)")
    learn.add_argument("--class-balance", type=types.real_number(0, 1), default=1.0, metavar="P",
                       help="weigh the new structures' and the background's cross-entropy on the new frames by their "
                            "pixel share to the power -P (old structures take the background's weight); 0 = "
                            "unweighted (default: %(default)s, with which the new structures had pixels in every seed "
                            "on held-out Endoscapes train videos)")
    # 3e-4, not lap train's 1e-3: at 1e-3 a step lost the tool on held-out Endoscapes train videos (-32 IoU points
    # in the worst step, two seeds), at 3e-4 its old structures kept their IoU (benchmarks.lap_endoscapes
    # --dev-steps, benchmarks/results/lap_endoscapes_dev_steps).
    _training_options(learn, iterations=300, lr=3e-4)
    add_runtime_options(learn)
    learn.set_defaults(verb_function=lazy_verb(_JOBS, "run_learn"))

    segment = verbs.add_parser("segment", help="segment a frame or a folder of frames")
    add_model_option(segment)
    segment.add_argument("--input", required=True, metavar="FRAME_OR_DIR", help="RGB frame or folder of frames")
    segment.add_argument("--output", required=True, metavar="PNG_OR_DIR",
                         help="index PNG (for one frame) or folder: one <frame name>.png per frame, value = class")
    segment.add_argument("--overlay", action="store_true", help="also write <name>_overlay.png in class colours")
    add_runtime_options(segment, seed=False)
    segment.set_defaults(verb_function=lazy_verb(_JOBS, "run_segment"))

    evaluate = verbs.add_parser("evaluate", help="IoU/Dice per structure and old/new/all means on labelled frames")
    add_model_option(evaluate)
    _data_options(evaluate)
    evaluate.add_argument("--classes", type=types.name_list, default=None, metavar="a,b",
                          help="structures to score (default: all)")
    evaluate.add_argument("--report", required=True, metavar="R.json", help="report to write")
    add_runtime_options(evaluate, seed=False)
    evaluate.set_defaults(verb_function=lazy_verb(_JOBS, "run_evaluate"))

    sample = verbs.add_parser("sample", help="write frames the diffusion replay generates (SYNTHETIC)")
    add_model_option(sample)
    # "--count" because torchrun's own parser takes a bare "--n" for an abbreviation of its options and stops.
    sample.add_argument("--count", "--n", dest="n", type=types.whole_number(1, 10_000), default=8,
                        help="number of frames (default: %(default)s)")
    sample.add_argument("--out", required=True, metavar="DIR", help="folder to write (an existing one is replaced only if this command wrote it)")
    sample.add_argument("--confidence", type=types.real_number(0, 1), default=0.7,
                        help="pseudo-label threshold (default: 0.7)")
    add_runtime_options(sample)
    sample.set_defaults(verb_function=lazy_verb(_JOBS, "run_sample"))

    restore = verbs.add_parser("restore", help="write an earlier version (after step K) as a model of its own")
    add_model_option(restore)
    restore.add_argument("--step", type=types.whole_number(0), required=True, metavar="K",
                         help="version to restore")
    restore.add_argument("--out", required=True, metavar="MODEL_K", help="model bundle folder to write")
    add_progress_option(restore)
    restore.set_defaults(verb_function=lazy_verb(_JOBS, "run_restore"))
