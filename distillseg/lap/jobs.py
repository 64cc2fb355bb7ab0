"""The ``lap`` verbs, from parsed options to the engine: demo-data, train, learn, segment, evaluate, sample,
restore.

What can be checked without torch is checked here, before the work's modules load: every output against the inputs
and against what is already there (``distillseg.contract.outputs``), and the model's manifest against its schema,
so a mistake is refused in a fraction of a second. The work itself is in ``frame_jobs`` and ``training_jobs``.
"""

from __future__ import annotations

from pathlib import Path

from distillseg.common.reports import REPORT
from distillseg.contract.errors import file_error
from distillseg.contract.frames import DEMO_FRAMES, INDEX_MAP, PICTURE, REPLAY_FRAMES, is_frame_file
from distillseg.common.manifest_validation import read_valid_manifest
from distillseg.contract.manifest import LAP
from distillseg.contract.outputs import check_apart, check_bundle_output, check_target


def _check_model(args) -> None:
    read_valid_manifest(args.model, LAP)


def run_demo_data(args, progress) -> int:
    check_target(args.out, DEMO_FRAMES)
    from distillseg.lap.frame_jobs import demo_data

    return demo_data(args, progress)


def run_train(args, progress) -> int:
    encoder = args.encoder_weights if args.encoder_weights != "imagenet" else None
    check_bundle_output(args.out, LAP, [args.data, encoder])
    from distillseg.lap.training_jobs import train

    return train(args, progress)


def run_learn(args, progress) -> int:
    _check_model(args)
    check_bundle_output(args.out, LAP, [args.model, args.data, args.eval_data])
    from distillseg.lap.training_jobs import learn

    return learn(args, progress)


def _inputs(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if path.is_dir():
        frames = sorted(p for p in path.iterdir() if p.is_file() and is_frame_file(p) and not p.name.startswith("."))
        if not frames:
            raise file_error(path, "folder holds no PNG/JPEG/TIFF frames")
        return frames
    raise file_error(path, "input frame or folder does not exist")


def segment_outputs(source: Path, target: Path, overlay: bool, model: str) -> dict[Path, list[Path]]:
    """Each input frame's outputs: its index PNG (``target`` itself for one frame given as a file, else
    ``target/<stem>.png``) and, with ``overlay``, ``<stem>_overlay.png``; checked against each other, the inputs,
    the ``model`` folder and what is already there."""
    inputs = _inputs(source)
    single = source.is_file() and target.suffix.lower() == ".png"
    if source.is_file() and not single and target.suffix:
        raise file_error(target, "output for one frame must be a .png file (or a folder)")
    outputs = {}
    for path in inputs:
        out = target if single else target / f"{path.stem}.png"
        outputs[path] = [out] + ([out.with_name(f"{out.stem}_overlay.png")] if overlay else [])
    written = [out for outs in outputs.values() for out in outs]
    twice = next((out for out in written if written.count(out) > 1), None)
    if twice is not None:
        raise file_error(twice, "two frames of the input would both be written to this file (frames with the same "
                                "name and different types?); rename one of them")
    check_apart(written, [*inputs, model])
    for outs in outputs.values():
        check_target(outs[0], INDEX_MAP)
        for overlay_path in outs[1:]:
            check_target(overlay_path, PICTURE)
    return outputs


def run_segment(args, progress) -> int:
    _check_model(args)
    outputs = segment_outputs(Path(args.input), Path(args.output), args.overlay, args.model)
    from distillseg.lap.frame_jobs import segment

    return segment(args, progress, outputs)


def run_evaluate(args, progress) -> int:
    _check_model(args)
    check_apart([args.report], [args.model, args.data])
    check_target(args.report, REPORT)
    from distillseg.lap.frame_jobs import evaluate

    return evaluate(args, progress)


def run_sample(args, progress) -> int:
    _check_model(args)
    check_apart([args.out], [args.model], folders=[args.out])
    check_target(args.out, REPLAY_FRAMES)
    from distillseg.lap.frame_jobs import sample

    return sample(args, progress)


def run_restore(args, progress) -> int:
    _check_model(args)
    check_bundle_output(args.out, LAP, [args.model], training=False)
    from distillseg.lap.frame_jobs import restore

    return restore(args, progress)
