"""``distillseg oneshot train | segment | evaluate | demo-data``: the options, with their types and ranges.

The verbs themselves are in ``distillseg.oneshot.jobs``, imported only when one runs.
"""

from __future__ import annotations

import argparse

from distillseg.common import option_types as types
from distillseg.common.cli_options import (IncreasingPair, PatchSize, add_checkpoint_options, add_loop_options,
                                           add_memory_option, add_model_option, add_progress_option,
                                           add_runtime_options, add_seed_option, lazy_verb)

_JOBS = "distillseg.oneshot.jobs"
_WEIGHT = types.real_number(0)
_SCAN = "NIfTI or NRRD file, or a folder holding a DICOM series"


def _add_series_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--series-uid", nargs="+", metavar="UID", default=None,
                        help="for a DICOM folder that holds several series: the SeriesInstanceUID of the one to read "
                             "(one UID per such folder; a folder with one series needs none)")


def _add_segment_options(parser: argparse.ArgumentParser) -> None:
    add_model_option(parser, "trained one-shot model bundle")
    parser.add_argument("--predictor", default="student", choices=["student", "augmenter", "affine", "identity"],
                        help="student: the trained network (default); augmenter: the atlas labels warped by the "
                             "learned registration; affine: the atlas labels placed by the affine pre-alignment "
                             "only; identity: the atlas labels where the headers put them (no registration). The "
                             "last two are the floors a model should beat")
    parser.add_argument("--sliding-window", type=types.whole_number(16, types.MAX_GRID), nargs=3, default=None,
                        metavar=("I", "J", "K"),
                        help="run the network in overlapping windows of this size (working-grid voxels) with "
                             "Gaussian blending; default: the training patch size (or the whole grid for a "
                             "student trained on it), smaller when the memory budget needs it")
    add_memory_option(parser, "memory budget, e.g. 6G (default: what the device has free)")
    parser.add_argument("--refine-iterations", type=types.whole_number(0, 100_000), default=None,
                        help="instance-optimisation iterations of the learned registration per scan (default: as "
                             "in training with --predictor augmenter, --registration-fusion or "
                             "--registration-margin, else 0: the registration union alone uses the network's "
                             "one-pass warp)")
    parser.add_argument("--refine-smooth-weight", type=types.real_number(0, 1000), default=None,
                        help="smoothness weight of that per-scan refinement (default: as in training; 0.25 with "
                             "--registration-fusion 0.5 measured best on brain MRI, docs/oneshot.md)")
    parser.add_argument("--registration-fusion", type=types.real_number(0, 1), default=0.0, metavar="W",
                        help="with --predictor student: average the student's class probabilities with the atlas "
                             "labels warped by the per-scan refined registration, weight W for the registration "
                             "(0 = off: the student, with --registration-union; 1 = the registration alone). 0.5 "
                             "with --refine-smooth-weight 0.25 gained 0.016 Dice on unseen brains but lost 0.017 on "
                             "the spine CT (docs/oneshot.md), so it is off by default; costs one refined "
                             "registration per scan, about a minute on 2 CPU cores at 2 mm")
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile the student first (pays off over many scans; compiling takes minutes)")
    parser.add_argument("--keep-largest", nargs="?", const="all", default=None, choices=["all", "atlas"],
                        help="keep only the largest connected component of each structure (all, the default "
                             "when no value is given), or only of the structures that are one piece in the "
                             "atlas (atlas: fragmented ones, e.g. the choroid plexus, keep every piece)")
    parser.add_argument("--registration-margin", type=types.real_number(0, 1000), default=None, metavar="MM",
                        help="with --predictor student: a structure's voxels farther than MM millimetres from where "
                             "the learned registration puts that structure go to the next most likely class "
                             "(removes stray islands; costs one registration per scan; default: off)")
    parser.add_argument("--registration-union", action=argparse.BooleanOptionalAction, default=True,
                        help="with --predictor student and no --registration-fusion: a structure in several "
                             "pieces in the atlas (e.g. the choroid "
                             "plexus) also takes the voxels the learned registration gives it, reaching the extent "
                             "a thin structure's student region falls short of (default: on; costs one pass of the "
                             "registration network per scan when the atlas has such a structure)")


def add_oneshot_verbs(subparsers) -> None:
    oneshot = subparsers.add_parser("oneshot", help="OneShotSeg: 3D scans, one labelled atlas")
    verbs = oneshot.add_subparsers(dest="verb", required=True, metavar="VERB")

    train = verbs.add_parser("train", help="train a student from one labelled atlas and unlabelled scans")
    train.add_argument("--atlas", required=True, metavar="IMG", help=f"the labelled scan ({_SCAN})")
    train.add_argument("--atlas-labels", required=True, metavar="LBL",
                       help="its label map on the same grid (NIfTI, NRRD or Slicer .seg.nrrd)")
    train.add_argument("--label-names", metavar="FILE", default=None,
                       help="names/colours of the labels: JSON {\"1\": \"liver\", ...} or a colour table "
                            "(value name r g b); default: from a .seg.nrrd, else 'Label N'")
    unlabeled = train.add_mutually_exclusive_group(required=True)
    unlabeled.add_argument("--unlabeled", nargs="+", metavar="IMG",
                           help=f"unlabelled scans of the same anatomy (each a {_SCAN})")
    unlabeled.add_argument("--unlabeled-bids", metavar="DATASET",
                           help="or: every T1-weighted scan of this BIDS dataset (sub-*/[ses-*/]anat/*_T1w.nii[.gz])")
    _add_series_option(train)
    train.add_argument("--out", required=True, metavar="MODEL_DIR", help="model bundle folder to write")
    train.add_argument("--description", default="", metavar="TEXT",
                       help="your words about the training data, kept in the model (which keeps no file names or "
                            "paths of its inputs, only their SHA-256, grid shape and voxel size)")
    add_loop_options(train, iterations=500, lr=2e-3, batch_size="auto", what="distillation (student)",
                     batch_auto="1, or one per process under torchrun")
    train.add_argument("--augmenter-iterations", type=types.whole_number(0), default=100,
                       help="registration augmenter steps (0 = none: the refinement starts from no deformation)")
    train.add_argument("--spacing", type=types.spacing_mm, default="auto",
                       help="working grid spacing in mm; 'atlas' = the atlas's own; 'auto' = the atlas's spacing, "
                            "coarsened until the labelled region fits ~1.2 M voxels on CPU / 16 M on a GPU")
    train.add_argument("--modality", default="auto", choices=["auto", "mri", "ct"],
                       help="intensity normalisation: mri = 0.5-99.5 percentiles, ct = a HU window; auto decides "
                            "from the atlas")
    train.add_argument("--ct-window", type=types.real_number(), nargs=2, action=IncreasingPair,
                       default=(-1000.0, 1000.0), metavar=("LOW", "HIGH"), help="HU window of --modality ct")
    train.add_argument("--no-prealign", action="store_true", help="skip the affine pre-alignment (scans already "
                                                                  "aligned to the atlas)")
    add_checkpoint_options(train, "MODEL_DIR")
    add_memory_option(train, "memory budget, e.g. 12G; a training that would not fit stops before it starts with a "
                             "suggestion (default: what the device has free)")
    advanced = train.add_argument_group("method")
    advanced.add_argument("--augmenter-from", metavar="MODEL_DIR", default=None,
                          help="skip the augmenter's training: start from the trained augmenter of this earlier "
                               "OneShotSeg model, trained on the same atlas at the same --spacing (its augmenter "
                               "options then apply; the unlabelled scans may differ). For trainings that change "
                               "only the student")
    advanced.add_argument("--augmenter-lr", type=types.real_number(0, above=True), default=1e-4,
                          help="augmenter learning rate (Adam)")
    advanced.add_argument("--batch-pairs", type=types.batch_count, default="auto",
                          help="image pairs per augmenter step (the global batch, shared out under torchrun); "
                               "auto = 2, or one per process when torchrun starts more")
    advanced.add_argument("--refine-iterations", type=types.whole_number(0, 100_000), default=100,
                          help="instance-optimisation iterations refining each atlas->scan deformation after the "
                               "augmenter's training (0 = use the network's as it is)")
    advanced.add_argument("--smooth-weight", type=_WEIGHT, default=1.0, help="augmenter smoothness weight")
    advanced.add_argument("--refine-smooth-weight", type=_WEIGHT, default=None,
                          help="smoothness weight of the refinement (instance optimisation) of each deformation, "
                               "in training and in `segment` (default: --smooth-weight)")
    advanced.add_argument("--contrastive-weight", type=_WEIGHT, default=0.01, help="augmenter NT-Xent weight")
    advanced.add_argument("--seg-weight", type=types.real_number(0, above=True), default=1.0,
                          help="student Dice+CE weight (above 0: without it the student learns no labels)")
    advanced.add_argument("--hint-weight", type=_WEIGHT, default=0.0,
                          help="the paper's hint (feature distillation from a reconstruction teacher) weight; 0 = "
                               "off, the default: on brains it lowered Dice in both directions (docs/oneshot.md)")
    advanced.add_argument("--hint-adapter", action="store_true",
                          help="compare the teacher's features with a learned 1x1x1 convolution of the student's "
                               "(FitNets) rather than with the student's own")
    advanced.add_argument("--recon-weight", type=_WEIGHT, default=1.0, help="teacher reconstruction weight; 0 = off")
    advanced.add_argument("--student", default="residual", choices=["residual", "plain"], help="student blocks")
    advanced.add_argument("--decoder-subunits", type=int, default=1, choices=[1, 2],
                          help="convolutions per decoder block of teacher and student")
    advanced.add_argument("--up-kernel", type=int, default=2, choices=[2, 3],
                          help="transposed-convolution kernel of the decoders (2 = exact 2x upsampling, cheaper)")
    advanced.add_argument("--deep-supervision", type=types.whole_number(0, 3), default=2,
                          help="extra student heads at 1/2, 1/4, ... resolution trained with MONAI "
                               "DeepSupervisionLoss (0 = off)")
    advanced.add_argument("--no-atlas-prior", action="store_true",
                          help="student without the atlas prior input (the paper's student; learns far slower)")
    advanced.add_argument("--mix-beta", type=_WEIGHT, default=0.3,
                          help="β of the Beta(β, β) deformation mixing; 0 = no mixing")
    advanced.add_argument("--appearance", type=types.real_number(0, 1), default=0.5,
                          help="probability of transferring a target's appearance onto a synthetic image")
    advanced.add_argument("--checkpointing", action="store_true",
                          help="gradient checkpointing of teacher and student: less memory, about 30%% more time")
    advanced.add_argument("--patch-size", type=types.patch_word, nargs="+", action=PatchSize, default=(64, 64, 64),
                          help="train the student on random patches of this size (working-grid voxels; default 64 "
                               "64 64: most steps per minute on a CPU), or 'whole' for the whole working grid")
    add_runtime_options(train)
    train.set_defaults(verb_function=lazy_verb(_JOBS, "run_train"))

    segment = verbs.add_parser("segment", help="segment scans with a trained model, on each scan's own grid")
    _add_segment_options(segment)
    inputs = segment.add_mutually_exclusive_group(required=True)
    inputs.add_argument("--input", nargs="+", metavar="IMG", help=f"scans to segment (each a {_SCAN})")
    inputs.add_argument("--bids", metavar="DATASET",
                        help="or: every T1-weighted scan of this BIDS dataset, into a BIDS derivative dataset "
                             "(label maps *_dseg.nii.gz, dseg.tsv, dataset_description.json)")
    _add_series_option(segment)
    segment.add_argument("--output", metavar="OUT_OR_DIR",
                         help="label map file (format from its suffix: .nii.gz, .nrrd, .seg.nrrd, or .dcm for a "
                              "DICOM SEG of a DICOM input, which needs pip install distillseg[dicom]) for one input, "
                              "or a folder; with --bids the derivative folder (default: DATASET/derivatives/"
                              "oneshotseg)")
    segment.add_argument("--format", default=None, choices=[".nii.gz", ".nii", ".nrrd", ".seg.nrrd", "dcm-seg"],
                         help="file type in folder mode; dcm-seg = a DICOM SEG (.dcm) per DICOM input (default: "
                              ".nii.gz for NIfTI inputs, else .seg.nrrd)")
    add_runtime_options(segment, seed=False)
    segment.set_defaults(verb_function=lazy_verb(_JOBS, "run_segment"))

    evaluate = verbs.add_parser("evaluate", help="segment labelled scans and report Dice and HD95 per structure")
    _add_segment_options(evaluate)
    evaluate.add_argument("--images", required=True, nargs="+", metavar="IMG",
                          help=f"labelled scans to segment and score (not the training scans; each a {_SCAN})")
    _add_series_option(evaluate)
    evaluate.add_argument("--labels", required=True, nargs="+", metavar="LBL", help="their true label maps")
    evaluate.add_argument("--label-map", default=None, metavar="JSON[:KEY]",
                          help="maps the model's label values to the truth's, e.g. labels.json:oasis_seg35_to_freesurfer")
    evaluate.add_argument("--structures", default=None, metavar="LIST_OR_JSON[:KEY]",
                          help="truth label values to score: comma list or JSON list (default: every mapped structure)")
    evaluate.add_argument("--report", required=True, metavar="R.json", help="report to write")
    add_runtime_options(evaluate, seed=False)
    evaluate.set_defaults(verb_function=lazy_verb(_JOBS, "run_evaluate"))

    demo = verbs.add_parser("demo-data", help="write built-in demo data: an MNI152 tissue atlas and SYNTHETIC "
                                              "subjects made from it (needs nilearn)")
    demo.add_argument("--out", required=True, metavar="DIR",
                      help="folder to write (an existing one is replaced only if this command wrote it)")
    demo.add_argument("--unlabeled", type=types.whole_number(1, 100), default=4,
                      help="unlabelled subjects (default: %(default)s)")
    demo.add_argument("--test", type=types.whole_number(0, 100), default=2,
                      help="held-out subjects with labels (default: %(default)s)")
    add_seed_option(demo)
    add_progress_option(demo)
    demo.set_defaults(verb_function=lazy_verb(_JOBS, "run_demo_data"))
