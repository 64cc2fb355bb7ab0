"""``distillseg oneshot train | segment | evaluate``."""

from __future__ import annotations

import argparse
from pathlib import Path

from distillseg.common.cli_support import add_runtime_options


def _train(args, progress) -> int:
    from distillseg.oneshot.distill import DistillOptions
    from distillseg.oneshot.synthesis import SynthesisOptions
    from distillseg.oneshot.train import TrainOptions, train_oneshot
    from distillseg.oneshot.train_augmenter import AugmenterOptions
    from distillseg.common.device import set_threads

    set_threads(args.threads)
    options = TrainOptions(
        atlas=args.atlas, atlas_labels=args.atlas_labels, unlabeled=args.unlabeled, out=args.out,
        label_names=args.label_names, spacing=args.spacing, modality=args.modality, ct_window=tuple(args.ct_window),
        augmenter=AugmenterOptions(iterations=args.augmenter_iterations, lr=args.augmenter_lr,
                                   batch_pairs=args.batch_pairs, smooth_weight=args.smooth_weight,
                                   contrastive_weight=args.contrastive_weight,
                                   refine_iterations=args.refine_iterations),
        distill=DistillOptions(iterations=args.iterations, lr=args.lr, batch_size=args.batch_size,
                               seg_weight=args.seg_weight,
                               hint_weight=args.hint_weight, recon_weight=args.recon_weight,
                               student_residual=args.student == "residual", checkpointing=args.checkpointing,
                               decoder_subunits=args.decoder_subunits, up_kernel=args.up_kernel,
                               deep_supervision=args.deep_supervision, atlas_prior=not args.no_atlas_prior),
        synthesis=SynthesisOptions(mix_beta=args.mix_beta, appearance_probability=args.appearance,
                                   patch=_patch_size(args.patch_size)),
        prealign=not args.no_prealign, device=args.device, precision=args.precision, seed=args.seed,
        resume=args.resume, checkpoint_every=args.checkpoint_every, max_memory=args.max_memory,
        description=args.description,
    )
    train_oneshot(options, progress)
    return 0


def _batch(word: str) -> int | None:
    """``--batch-size`` / ``--batch-pairs``: a positive count, or ``auto`` (None: settled by the number of
    processes, ``distributed.global_batch``)."""
    if word == "auto":
        return None
    if not word.isdigit() or int(word) < 1:
        raise argparse.ArgumentTypeError(f"a positive whole number or 'auto', not {word!r}")
    return int(word)


def _patch_size(words: list[str]) -> tuple[int, int, int] | None:
    """``--patch-size``: three positive voxel counts, or ``whole`` (None: the whole working grid)."""
    from distillseg.contract.errors import UserError

    if words == ["whole"]:
        return None
    try:
        size = tuple(int(w) for w in words)
    except ValueError:
        size = ()
    if len(size) != 3 or min(size) < 16:
        raise UserError(f"--patch-size takes three voxel counts of at least 16 or 'whole', not {' '.join(words)}.")
    return size


def _output_paths(inputs: list[str], output: str, suffix: str | None) -> list[Path]:
    """One output per input: ``output`` itself for a single input with a volume suffix, else files in a folder."""
    from distillseg.common.volume_io import NIFTI_SUFFIXES, NRRD_SUFFIXES

    if len(inputs) == 1 and output.lower().endswith(NIFTI_SUFFIXES + NRRD_SUFFIXES):
        return [Path(output)]
    paths = []
    for path in inputs:
        name = Path(path).name
        stem = name[: -len(".nii.gz")] if name.lower().endswith(".nii.gz") else Path(name).stem
        stem = stem[: -len(".seg")] if stem.endswith(".seg") else stem
        chosen = suffix or (".nii.gz" if name.lower().endswith(NIFTI_SUFFIXES) else ".seg.nrrd")
        paths.append(Path(output) / f"{stem}_seg{chosen}")
    if len(set(paths)) != len(paths):
        from distillseg.contract.errors import UserError

        raise UserError("Two inputs have the same file name; segment them into different output folders.")
    return paths


def _segment(args, progress) -> int:
    from distillseg.oneshot.segment import segment_files

    outputs = _output_paths(args.input, args.output, args.format)
    segment_files(args, outputs, progress)
    return 0


def _evaluate(args, progress) -> int:
    from distillseg.oneshot.evaluate import evaluate_files

    evaluate_files(args, progress)
    return 0


def _demo_data(args, progress) -> int:
    from distillseg.oneshot.demo_data import NOTICE, make_demo_data

    paths = make_demo_data(args.out, unlabeled=args.unlabeled, test=args.test, seed=args.seed)
    progress.warning(NOTICE)
    progress.result(folder=str(args.out), atlas=str(paths["atlas"]), unlabeled=[str(p) for p in paths["unlabeled"]],
                    test=[str(p) for p in paths["test"]], synthetic=True)
    return 0


def _add_segment_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, metavar="MODEL_DIR", help="trained one-shot model bundle")
    parser.add_argument("--predictor", default="student", choices=["student", "augmenter", "affine", "identity"],
                        help="student: the trained network (default); augmenter: the atlas labels warped by the "
                             "learned registration; affine: the atlas labels placed by the affine pre-alignment "
                             "only; identity: the atlas labels where the headers put them (no registration). The "
                             "last two are the floors a model should beat")
    parser.add_argument("--sliding-window", type=int, nargs=3, default=None, metavar=("I", "J", "K"),
                        help="run the network in overlapping windows of this size (working-grid voxels) with "
                             "Gaussian blending; default: the training patch size (or the whole grid for a "
                             "student trained on it), smaller when the memory budget needs it")
    parser.add_argument("--max-memory", default=None, metavar="SIZE",
                        help="memory budget, e.g. 6G (default: what the device has free)")
    parser.add_argument("--refine-iterations", type=int, default=None,
                        help="with --predictor augmenter: instance-optimisation iterations per scan "
                             "(default: as in training)")
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile the student first (pays off over many scans; compiling takes minutes)")
    parser.add_argument("--keep-largest", action="store_true",
                        help="keep only the largest connected component of each structure")


def add_oneshot_verbs(subparsers) -> None:
    oneshot = subparsers.add_parser("oneshot", help="OneShotSeg: 3D scans, one labelled atlas")
    verbs = oneshot.add_subparsers(dest="verb", required=True, metavar="VERB")

    train = verbs.add_parser("train", help="train a student from one labelled atlas and unlabelled scans",
                             formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    train.add_argument("--atlas", required=True, metavar="IMG", help="the labelled scan (NIfTI or NRRD)")
    train.add_argument("--atlas-labels", required=True, metavar="LBL",
                       help="its label map on the same grid (NIfTI, NRRD or Slicer .seg.nrrd)")
    train.add_argument("--label-names", metavar="FILE", default=None,
                       help="names/colours of the labels: JSON {\"1\": \"liver\", ...} or a colour table "
                            "(value name r g b); default: from a .seg.nrrd, else 'Label N'")
    train.add_argument("--unlabeled", required=True, nargs="+", metavar="IMG", help="unlabelled scans of the same anatomy")
    train.add_argument("--out", required=True, metavar="MODEL_DIR", help="model bundle folder to write")
    train.add_argument("--description", default="", metavar="TEXT",
                       help="your words about the training data, kept in the model (which keeps no file names or "
                            "paths of its inputs, only their SHA-256, grid shape and voxel size)")
    train.add_argument("--iterations", type=int, default=500, help="distillation (student) steps")
    train.add_argument("--augmenter-iterations", type=int, default=100, help="registration augmenter steps")
    train.add_argument("--spacing", default="auto",
                       help="working grid spacing in mm; 'atlas' = the atlas's own; 'auto' = the atlas's spacing, "
                            "coarsened until the labelled region fits ~1.2 M voxels on CPU / 16 M on a GPU")
    train.add_argument("--modality", default="auto", choices=["auto", "mri", "ct"],
                       help="intensity normalisation: mri = 0.5-99.5 percentiles, ct = a HU window; auto decides "
                            "from the atlas")
    train.add_argument("--ct-window", type=float, nargs=2, default=[-1000.0, 1000.0], metavar=("LOW", "HIGH"))
    train.add_argument("--no-prealign", action="store_true", help="skip the affine pre-alignment (scans already "
                                                                  "aligned to the atlas)")
    train.add_argument("--resume", action="store_true", help="continue from MODEL_DIR.checkpoint")
    train.add_argument("--checkpoint-every", type=int, default=50, help="steps between checkpoints")
    train.add_argument("--max-memory", default=None, metavar="SIZE",
                       help="memory budget, e.g. 12G; a training that would not fit stops before it starts with a "
                            "suggestion (default: what the device has free)")
    advanced = train.add_argument_group("method")
    advanced.add_argument("--lr", type=float, default=2e-3, help="distillation learning rate (Adam)")
    advanced.add_argument("--augmenter-lr", type=float, default=1e-4, help="augmenter learning rate (Adam)")
    advanced.add_argument("--batch-pairs", type=_batch, default="auto",
                          help="image pairs per augmenter step (the global batch, shared out under torchrun); "
                               "auto = 2, or one per process when torchrun starts more")
    advanced.add_argument("--batch-size", type=_batch, default="auto",
                          help="synthetic samples per distillation step (the global batch, shared out under "
                               "torchrun); auto = 1, or one per process under torchrun")
    advanced.add_argument("--refine-iterations", type=int, default=100,
                          help="instance-optimisation iterations refining each atlas->scan deformation after the "
                               "augmenter's training (0 = use the network's as it is)")
    advanced.add_argument("--smooth-weight", type=float, default=1.0, help="augmenter smoothness weight")
    advanced.add_argument("--contrastive-weight", type=float, default=0.01, help="augmenter NT-Xent weight")
    advanced.add_argument("--seg-weight", type=float, default=1.0, help="student Dice+CE weight")
    advanced.add_argument("--hint-weight", type=float, default=1.0, help="hint (feature distillation) weight; 0 = off")
    advanced.add_argument("--recon-weight", type=float, default=1.0, help="teacher reconstruction weight; 0 = off")
    advanced.add_argument("--student", default="residual", choices=["residual", "plain"], help="student blocks")
    advanced.add_argument("--decoder-subunits", type=int, default=1, choices=[1, 2],
                          help="convolutions per decoder block of teacher and student")
    advanced.add_argument("--up-kernel", type=int, default=2, choices=[2, 3],
                          help="transposed-convolution kernel of the decoders (2 = exact 2x upsampling, cheaper)")
    advanced.add_argument("--deep-supervision", type=int, default=2,
                          help="extra student heads at 1/2, 1/4, ... resolution trained with MONAI "
                               "DeepSupervisionLoss (0 = off)")
    advanced.add_argument("--no-atlas-prior", action="store_true",
                          help="student without the atlas prior input (the paper's student; learns far slower)")
    advanced.add_argument("--mix-beta", type=float, default=0.3,
                          help="β of the Beta(β, β) deformation mixing; 0 = no mixing")
    advanced.add_argument("--appearance", type=float, default=0.5,
                          help="probability of transferring a target's appearance onto a synthetic image")
    advanced.add_argument("--checkpointing", action="store_true",
                          help="gradient checkpointing of teacher and student: less memory, about 30%% more time")
    advanced.add_argument("--patch-size", nargs="+", default=["64", "64", "64"], metavar="I J K | whole",
                          help="train the student on random patches of this size (working-grid voxels; default 64 "
                               "64 64: most steps per minute on a CPU), or 'whole' for the whole working grid")
    add_runtime_options(train)
    train.set_defaults(verb_function=_train)

    segment = verbs.add_parser("segment", help="segment scans with a trained model, on each scan's own grid")
    _add_segment_options(segment)
    segment.add_argument("--input", required=True, nargs="+", metavar="IMG", help="scans to segment")
    segment.add_argument("--output", required=True, metavar="OUT_OR_DIR",
                         help="label map file (format from its suffix: .nii.gz, .nrrd, .seg.nrrd) for one input, "
                              "or a folder")
    segment.add_argument("--format", default=None, choices=[".nii.gz", ".nii", ".nrrd", ".seg.nrrd"],
                         help="file type in folder mode (default: .nii.gz for NIfTI inputs, else .seg.nrrd)")
    add_runtime_options(segment, seed=False)
    segment.set_defaults(verb_function=_segment)

    evaluate = verbs.add_parser("evaluate", help="segment labelled scans and report Dice and HD95 per structure")
    _add_segment_options(evaluate)
    evaluate.add_argument("--images", required=True, nargs="+", metavar="IMG")
    evaluate.add_argument("--labels", required=True, nargs="+", metavar="LBL", help="their true label maps")
    evaluate.add_argument("--label-map", default=None, metavar="JSON[:KEY]",
                          help="maps the model's label values to the truth's, e.g. labels.json:oasis_seg35_to_freesurfer")
    evaluate.add_argument("--structures", default=None, metavar="LIST_OR_JSON[:KEY]",
                          help="truth label values to score: comma list or JSON list (default: every mapped structure)")
    evaluate.add_argument("--report", required=True, metavar="R.json", help="report to write")
    add_runtime_options(evaluate, seed=False)
    evaluate.set_defaults(verb_function=_evaluate)

    demo = verbs.add_parser("demo-data", help="write built-in demo data: an MNI152 tissue atlas and SYNTHETIC "
                                              "subjects made from it (needs nilearn)")
    demo.add_argument("--out", required=True, metavar="DIR")
    demo.add_argument("--unlabeled", type=int, default=4, help="unlabelled subjects (default: 4)")
    demo.add_argument("--test", type=int, default=2, help="held-out subjects with labels (default: 2)")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--progress", default="auto", choices=["auto", "tty", "jsonl", "none"])
    demo.set_defaults(verb_function=_demo_data)
