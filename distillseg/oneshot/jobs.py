"""The ``oneshot`` verbs, from parsed options to the engine: train, segment, evaluate, demo-data.

The parser (``distillseg.oneshot.cli``) has already checked every option's type and range. What needs the files
but not torch is checked here, before the work's modules load: every input's header, every output against the
inputs and what is already there (``distillseg.contract.outputs``), the model's manifest against its schema; so a
mistake is refused in a fraction of a second.
"""

from __future__ import annotations

from pathlib import Path

from distillseg.common.reports import REPORT
from distillseg.common.volume_io import LABEL_MAP, check_volume_files, volume_format
from distillseg.contract.errors import UserError, check_readable_file
from distillseg.common.manifest_validation import read_valid_manifest
from distillseg.contract.manifest import ONESHOT
from distillseg.contract.outputs import check_apart, check_bundle_output, check_outside, check_target


def series_uids(args) -> tuple[str, ...]:
    """``--series-uid``: the DICOM series to read from input folders that hold several (none given: ())."""
    return tuple(args.series_uid or ())


def _folders(paths) -> list[str]:
    """The inputs that are folders (DICOM series), read as a whole: no output may go inside them."""
    return [path for path in paths if Path(path).is_dir()]


def run_train(args, progress) -> int:
    if args.hint_adapter and args.hint_weight == 0:
        raise UserError("--hint-adapter changes how the hint loss compares features, but the hint is off; add "
                        "--hint-weight above 0 (the paper's is 1).")
    if args.unlabeled_bids:
        from distillseg.common.bids import t1w_scans

        atlas = Path(args.atlas).resolve()
        args.unlabeled = [str(scan) for scan in t1w_scans(args.unlabeled_bids) if scan.resolve() != atlas]
    inputs = [args.atlas, args.atlas_labels, *args.unlabeled]
    check_volume_files(inputs, series_uids(args))
    if args.label_names:
        check_readable_file(args.label_names)
    if args.augmenter_from:
        _check_model(args.augmenter_from)
    check_bundle_output(args.out, ONESHOT, [*inputs, args.label_names, args.augmenter_from])
    check_outside([args.out], _folders(inputs) + ([args.augmenter_from] if args.augmenter_from else []))
    from distillseg.common.device import set_threads
    from distillseg.oneshot.distill import DistillOptions
    from distillseg.oneshot.synthesis import SynthesisOptions
    from distillseg.oneshot.train import TrainOptions, train_oneshot
    from distillseg.oneshot.train_augmenter import AugmenterOptions

    set_threads(args.threads)
    options = TrainOptions(
        atlas=args.atlas, atlas_labels=args.atlas_labels, unlabeled=args.unlabeled, out=args.out,
        label_names=args.label_names, series_uids=series_uids(args), spacing=args.spacing, modality=args.modality,
        ct_window=tuple(args.ct_window),
        augmenter=AugmenterOptions(iterations=args.augmenter_iterations, lr=args.augmenter_lr,
                                   batch_pairs=args.batch_pairs, smooth_weight=args.smooth_weight,
                                   contrastive_weight=args.contrastive_weight,
                                   refine_iterations=args.refine_iterations,
                                   refine_smooth_weight=args.refine_smooth_weight),
        distill=DistillOptions(iterations=args.iterations, lr=args.lr, batch_size=args.batch_size,
                               seg_weight=args.seg_weight,
                               hint_weight=args.hint_weight, hint_adapter=args.hint_adapter,
                               recon_weight=args.recon_weight,
                               student_residual=args.student == "residual", checkpointing=args.checkpointing,
                               decoder_subunits=args.decoder_subunits, up_kernel=args.up_kernel,
                               deep_supervision=args.deep_supervision, atlas_prior=not args.no_atlas_prior),
        synthesis=SynthesisOptions(mix_beta=args.mix_beta, appearance_probability=args.appearance,
                                   patch=args.patch_size),
        prealign=not args.no_prealign, device=args.device, precision=args.precision, seed=args.seed,
        resume=args.resume, checkpoint_every=args.checkpoint_every, max_memory=args.max_memory,
        description=args.description, augmenter_from=args.augmenter_from,
    )
    train_oneshot(options, progress)
    return 0


def _check_model(model) -> None:
    read_valid_manifest(model, ONESHOT)


def output_paths(inputs: list[str], output: str, suffix: str | None) -> list[Path]:
    """One output per input: ``output`` itself for a single input with a volume (or DICOM SEG) suffix, else files
    in a folder (``--format dcm-seg``: ``.dcm``)."""
    from distillseg.common.dicom_seg import SEG_SUFFIXES
    from distillseg.common.volume_io import NIFTI_SUFFIXES, NRRD_SUFFIXES
    from distillseg.contract.paths import segmentation_file_name

    if len(inputs) == 1 and output.lower().endswith(NIFTI_SUFFIXES + NRRD_SUFFIXES + SEG_SUFFIXES):
        return [Path(output)]
    suffix = SEG_SUFFIXES[0] if suffix == "dcm-seg" else suffix
    paths = []
    for path in inputs:
        name = Path(path).name or Path(path).resolve().name  # a DICOM folder given as "." has a name too
        chosen = suffix or (".nii.gz" if name.lower().endswith(NIFTI_SUFFIXES) else ".seg.nrrd")
        paths.append(Path(output) / segmentation_file_name(name, chosen, folder=Path(path).is_dir()))
    if len(set(paths)) != len(paths):
        raise UserError("Two inputs have the same file name; segment them into different output folders.")
    return paths


def run_segment(args, progress) -> int:
    if args.bids:
        return _run_segment_bids(args, progress)
    if args.output is None:
        raise UserError("--output is needed with --input: a label map file for one scan, or a folder.")
    outputs = output_paths(args.input, args.output, args.format)
    _check_segment(args, outputs)
    from distillseg.oneshot.segment import segment_files

    segment_files(args, outputs, progress)
    return 0


def _check_segment(args, outputs: list[Path], companions: tuple = ()) -> None:
    """Inputs, model and every output (label maps or DICOM SEGs, then ``companions``: ``(path, kind)``) checked
    before any work."""
    from distillseg.common import dicom_seg

    check_volume_files(args.input, series_uids(args))
    _check_model(args.model)
    written = [*outputs, *(path for path, _ in companions)]
    check_apart(written, [*args.input, args.model])
    check_outside(written, _folders(args.input))
    for source, output in zip(args.input, outputs):
        if dicom_seg.is_seg_path(output):
            dicom_seg.check_source(output, source)
            dicom_seg.check_available(output)
            check_target(output, dicom_seg.DICOM_SEG)
        else:
            volume_format(output)
            check_target(output, LABEL_MAP)
    for path, kind in companions:
        check_target(path, kind)


def _run_segment_bids(args, progress) -> int:
    """``--bids DATASET``: every T1w scan into the derivative dataset (``common.bids``), written together."""
    from distillseg.common import bids

    if args.series_uid:
        raise UserError("--series-uid does not apply with --bids: BIDS scans are NIfTI files.")
    if args.format not in (None, ".nii.gz"):
        raise UserError("--format does not apply with --bids: BIDS label maps are written as .nii.gz.")
    scans = bids.t1w_scans(args.bids)
    derivatives = bids.derivative_folder(args.bids, args.output)
    args.input = [str(scan) for scan in scans]
    outputs = [bids.dseg_path(args.bids, scan, derivatives) for scan in scans]
    companions = ((derivatives / bids.DESCRIPTION, bids.DERIVATIVE_DESCRIPTION),
                  (derivatives / bids.LABEL_TABLE, bids.DERIVATIVE_LABEL_TABLE))
    _check_segment(args, outputs, companions)
    from distillseg.oneshot.segment import segment_files

    def write_companions(staged, table) -> list[Path]:
        (description_path, description_kind), (table_path, table_kind) = companions
        bids.write_description(staged.stage(description_path, description_kind),
                               bids.description(Path(args.model).name, ONESHOT))
        bids.write_label_table(staged.stage(table_path, table_kind), table)
        return [description_path, table_path]

    segment_files(args, outputs, progress, write_companions)
    return 0


def run_evaluate(args, progress) -> int:
    from distillseg.oneshot.evaluate import split_spec

    if len(args.images) != len(args.labels):
        raise UserError(f"{len(args.images)} images but {len(args.labels)} label maps were given; pair them.")
    check_volume_files(args.images + args.labels, series_uids(args))
    _check_model(args.model)
    spec_files = [split_spec(spec)[0] for spec in (args.label_map, args.structures) if spec]
    check_apart([args.report], [*args.images, *args.labels, args.model, *spec_files])
    check_outside([args.report], _folders(args.images + args.labels))
    check_target(args.report, REPORT)
    from distillseg.oneshot.evaluate import evaluate_files

    evaluate_files(args, progress)
    return 0


def run_demo_data(args, progress) -> int:
    from distillseg.oneshot.demo_data import NOTICE, make_demo_data

    paths = make_demo_data(args.out, unlabeled=args.unlabeled, test=args.test, seed=args.seed)
    progress.warning(NOTICE)
    progress.result(folder=str(args.out), atlas=str(paths["atlas"]), unlabeled=[str(p) for p in paths["unlabeled"]],
                    test=[str(p) for p in paths["test"]], synthetic=True)
    return 0
