"""``distillseg lap …`` verbs (IncrementalLap): demo-data, train, learn, segment, evaluate, sample, restore.

Heavy imports happen inside the verbs (``distillseg.lap.*_jobs``), so ``--help`` is instant.
"""

from __future__ import annotations

import argparse

from distillseg.common.cli_support import add_runtime_options

DEFAULT_SIZE = (256, 320)


def _demo_data(args, progress):
    from distillseg.lap.frame_jobs import run_demo_data

    return run_demo_data(args, progress)


def _train(args, progress):
    from distillseg.lap.training_jobs import run_train

    return run_train(args, progress)


def _learn(args, progress):
    from distillseg.lap.training_jobs import run_learn

    return run_learn(args, progress)


def _segment(args, progress):
    from distillseg.lap.frame_jobs import run_segment

    return run_segment(args, progress)


def _evaluate(args, progress):
    from distillseg.lap.frame_jobs import run_evaluate

    return run_evaluate(args, progress)


def _sample(args, progress):
    from distillseg.lap.frame_jobs import run_sample

    return run_sample(args, progress)


def _restore(args, progress):
    from distillseg.lap.frame_jobs import run_restore

    return run_restore(args, progress)


def _data_options(parser, training: bool = True) -> None:
    group = parser.add_argument_group("data")
    group.add_argument("--data", required=True, metavar="DIR",
                       help="DSAD-layout folder (<structure>/<NN>/imageXX.png + maskXX.png, multilabel/<NN>/...) or "
                            "a folder with images/, masks/ (index masks) and labels.json")
    group.add_argument("--source", default="auto", choices=["auto", "structures", "multilabel"],
                       help="DSAD: per-structure folders, the multilabel folder, or auto = per-structure folders "
                            "when every structure has one (default: auto)")
    group.add_argument("--split", default="all", choices=["all", "train", "val", "test"],
                       help="DSAD's standard split by surgery (test 02 07 11 13 14 18 20 32, val 03 21 26, train "
                            "the rest); all = every surgery (default: all)")
    group.add_argument("--patients", default=None, metavar="NN,NN",
                       help="only these surgeries/patients (comma-separated folder names); overrides --split")


def _training_options(parser, iterations: int, lr: float) -> None:
    group = parser.add_argument_group("training")
    group.add_argument("--iterations", type=int, default=iterations,
                       help=f"segmenter training iterations (default: {iterations})")
    group.add_argument("--diffusion-iterations", type=int, default=600,
                       help="iterations of this step's replay diffusion model; 0 = none, later steps then cannot "
                            "replay this step's patients (default: 600)")
    group.add_argument("--batch-size", type=int, default=8, help="frames per iteration, over all processes "
                                                                  "(default: 8)")
    group.add_argument("--lr", type=float, default=lr, help=f"AdamW learning rate, polynomial decay "
                                                            f"(default: {lr:g})")
    group.add_argument("--sample-steps", type=int, default=50, help="DDIM steps when replaying (default: 50)")
    group.add_argument("--checkpoint-every", type=int, default=50,
                       help="write a resumable checkpoint beside --out every N iterations (default: 50)")
    group.add_argument("--resume", action="store_true",
                       help="continue from the checkpoint a cancelled or killed run left beside --out")


def add_lap_verbs(subparsers) -> None:
    lap = subparsers.add_parser("lap", help="IncrementalLap: laparoscopic frames, structures learned step by step")
    verbs = lap.add_subparsers(dest="verb", required=True, metavar="VERB")

    demo = verbs.add_parser("demo-data", help="write SYNTHETIC laparoscopic-looking frames in the DSAD layout")
    demo.add_argument("--out", required=True, metavar="DIR", help="folder to write (replaced if it exists)")
    demo.add_argument("--patients", type=int, default=8, help="number of patients/surgeries (default: 8)")
    demo.add_argument("--frames-per-patient", type=int, default=12, help="frames per patient (default: 12)")
    demo.add_argument("--size", type=int, nargs=2, default=(240, 320), metavar=("H", "W"),
                      help="frame height and width in pixels (default: 240 320)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    demo.add_argument("--progress", default="auto", choices=["auto", "tty", "jsonl", "none"],
                      help="progress output (default: auto)")
    demo.set_defaults(verb_function=_demo_data)

    train = verbs.add_parser("train", help="learn the first structures (step 0); on all data = the joint bound")
    _data_options(train)
    train.add_argument("--classes", required=True, metavar="a,b,c", help="structures to learn, in value order")
    train.add_argument("--out", required=True, metavar="MODEL", help="model bundle folder to write")
    train.add_argument("--size", type=int, nargs=2, default=DEFAULT_SIZE, metavar=("H", "W"),
                       help="working size, multiples of 32 (default: %(default)s)")
    train.add_argument("--backbone", default="resnet18", choices=["resnet10", "resnet18", "resnet34"],
                       help="ResNet encoder of the MONAI FlexibleUNet (default: resnet18)")
    train.add_argument("--encoder-weights", default=None, metavar="FILE|imagenet",
                       help="pretrained encoder: a .safetensors ResNet state dict, or 'imagenet' (downloaded once "
                            "into ~/.cache/distillseg); default: random initialisation")
    _training_options(train, iterations=600, lr=1e-3)
    add_runtime_options(train)
    train.set_defaults(verb_function=_train)

    learn = verbs.add_parser("learn", help="learn new structures from new patients' frames (old frames not needed)")
    learn.add_argument("--model", required=True, metavar="MODEL", help="current model bundle")
    _data_options(learn)
    learn.add_argument("--new-classes", required=True, metavar="d[,e]", help="structures to add")
    learn.add_argument("--out", required=True, metavar="MODEL2", help="new model bundle folder")
    learn.add_argument("--strategy", default="ours", choices=["ours", "finetune", "mib", "plop"],
                       help="ours = diffusion replay + MiB + POD + contrastive; finetune, mib, plop for comparison "
                            "(default: ours)")
    learn.add_argument("--replay", type=int, default=None, metavar="N",
                       help="synthetic frames to replay (default: as many as new frames)")
    learn.add_argument("--eval-data", default=None, metavar="DIR",
                       help="labelled folder to score the model on before and after (stored in the history)")
    weights = learn.add_argument_group("loss weights (default: the strategy's)")
    weights.add_argument("--kd-weight", type=float, default=None, help="unbiased output distillation (ours/mib: 10)")
    weights.add_argument("--pod-weight", type=float, default=None, help="pooled feature distillation (0.01)")
    weights.add_argument("--contrastive-weight", type=float, default=None, help="pixel InfoNCE (ours: 0.1)")
    weights.add_argument("--dice-weight", type=float, default=None, help="soft Dice of the new classes (ours: 1)")
    weights.add_argument("--confidence", type=float, default=None, help="pseudo-label threshold (0.7)")
    weights.add_argument("--pseudo-labels", action=argparse.BooleanOptionalAction, default=None,
                         help="label the old structures on the new frames where the previous model is confident "
                              "(ours, plop: on)")
    _training_options(learn, iterations=300, lr=1e-3)
    add_runtime_options(learn)
    learn.set_defaults(verb_function=_learn)

    segment = verbs.add_parser("segment", help="segment a frame or a folder of frames")
    segment.add_argument("--model", required=True, metavar="MODEL", help="model bundle")
    segment.add_argument("--input", required=True, metavar="FRAME_OR_DIR", help="RGB frame or folder of frames")
    segment.add_argument("--output", required=True, metavar="PNG_OR_DIR",
                         help="index PNG (for one frame) or folder: one <frame name>.png per frame, value = class")
    segment.add_argument("--overlay", action="store_true", help="also write <name>_overlay.png in class colours")
    add_runtime_options(segment)
    segment.set_defaults(verb_function=_segment)

    evaluate = verbs.add_parser("evaluate", help="IoU/Dice per structure and old/new/all means on labelled frames")
    evaluate.add_argument("--model", required=True, metavar="MODEL", help="model bundle")
    _data_options(evaluate)
    evaluate.add_argument("--classes", default=None, metavar="a,b", help="structures to score (default: all)")
    evaluate.add_argument("--report", required=True, metavar="R.json", help="report to write")
    add_runtime_options(evaluate)
    evaluate.set_defaults(verb_function=_evaluate)

    sample = verbs.add_parser("sample", help="write frames the diffusion replay generates (SYNTHETIC)")
    sample.add_argument("--model", required=True, metavar="MODEL", help="model bundle")
    # "--count" because torchrun's own parser takes a bare "--n" for an abbreviation of its options and stops.
    sample.add_argument("--count", "--n", dest="n", type=int, default=8, help="number of frames (default: 8)")
    sample.add_argument("--out", required=True, metavar="DIR", help="folder to write (replaced if it exists)")
    sample.add_argument("--confidence", type=float, default=0.7, help="pseudo-label threshold (default: 0.7)")
    add_runtime_options(sample)
    sample.set_defaults(verb_function=_sample)

    restore = verbs.add_parser("restore", help="write an earlier version (after step K) as a model of its own")
    restore.add_argument("--model", required=True, metavar="MODEL", help="model bundle")
    restore.add_argument("--step", type=int, required=True, metavar="K", help="version to restore")
    restore.add_argument("--out", required=True, metavar="MODEL_K", help="model bundle folder to write")
    restore.add_argument("--progress", default="auto", choices=["auto", "tty", "jsonl", "none"],
                         help="progress output (default: auto)")
    restore.set_defaults(verb_function=_restore)
