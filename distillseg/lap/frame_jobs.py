"""The ``lap`` jobs that do not train: demo-data, segment, evaluate, sample, restore."""

from __future__ import annotations

import json
from pathlib import Path

from distillseg.contract.atomic import OutputLock, atomic_directory, atomic_file
from distillseg.common.distributed import shard
from distillseg.contract.errors import UserError, file_error
from distillseg.contract.frames import is_frame_file, read_frame, write_frame, write_index_png
from distillseg.common.frame_views import write_overlay
from distillseg.common.model_cache import cached_model
from distillseg.lap.classes import parse_class_list
from distillseg.lap.data import find_records, load_frameset
from distillseg.lap.evaluation import confusion_scores, group_means, named_scores
from distillseg.lap.model_bundle import load_lap_model, restore_version, save_lap_model
from distillseg.lap.prediction import predict_frame, predict_working_grid
from distillseg.contract.frames import is_synthetic_folder
from distillseg.lap.synthetic_scenes import SYNTHETIC_NOTE, write_demo_data
from distillseg.lap.training_jobs import runtime

MODEL_ON_SYNTHETIC_CAPTION = "model trained on SYNTHETIC data"


def run_demo_data(args, progress) -> int:
    if args.patients < 1 or args.frames_per_patient < 1:
        raise UserError("--patients and --frames-per-patient must be at least 1.")
    if min(args.size) < 32:
        raise UserError(f"--size {args.size[0]} {args.size[1]}: frames must be at least 32x32 pixels.")
    with progress.stage("demo frames", args.patients * args.frames_per_patient) as stage:
        summary = write_demo_data(args.out, args.patients, args.frames_per_patient, tuple(args.size), args.seed,
                                  stage=stage)
    progress.log(SYNTHETIC_NOTE)
    progress.result(out=str(args.out), **summary)
    return 0


def _inputs(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if path.is_dir():
        frames = sorted(p for p in path.iterdir() if p.is_file() and is_frame_file(p) and not p.name.startswith("."))
        if not frames:
            raise file_error(path, "folder holds no PNG/JPEG/TIFF frames")
        return frames
    raise file_error(path, "input frame or folder does not exist")


def _loaded(path, device):
    model = load_lap_model(path)
    return model, model.build(device)


def run_segment(args, progress) -> int:
    """Write an index PNG per frame (0 = background, value = class), and optionally a colour overlay."""
    device, dtype, world = runtime(args, progress)
    model, net = cached_model(args, str(device), lambda: _loaded(args.model, device), progress)
    source, target = Path(args.input), Path(args.output)
    inputs = _inputs(source)
    single = source.is_file() and target.suffix.lower() == ".png"
    if source.is_file() and not single and target.suffix:
        raise file_error(target, "output for one frame must be a .png file (or a folder)")
    mine = shard(inputs, world)
    folder = target.parent if single else target
    created = not folder.exists()
    written: list[Path] = []
    caption = MODEL_ON_SYNTHETIC_CAPTION if model.synthetic_training_data else None
    try:
        with progress.stage("segment", len(mine)) as stage:
            for number, path in enumerate(mine, 1):
                frame = read_frame(path)
                labels = predict_frame(net, frame, model.size, device, dtype)
                out = target if single else target / f"{path.stem}.png"
                written.append(write_index_png(out, labels))
                if args.overlay:
                    overlay_path = out.with_name(f"{out.stem}_overlay.png")
                    written.append(write_overlay(overlay_path, frame, labels, model.registry.colors(),
                                                 caption=caption))
                stage.update(number)
    except BaseException:
        for path in written:  # nothing half-done: a run that fails takes its outputs with it
            path.unlink(missing_ok=True)
        if created and folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
        raise
    progress.result(outputs=[str(p) for p in written], classes=model.registry.labels_json(),
                    model_trained_on_synthetic_data=model.synthetic_training_data)
    return 0


def run_evaluate(args, progress) -> int:
    """IoU and Dice per structure on a labelled folder, and the old/new/all means of the model's latest step."""
    device, dtype, _ = runtime(args, progress)
    model = load_lap_model(args.model)
    names = parse_class_list(args.classes, "--classes") if args.classes else model.registry.names
    for name in names:
        if name not in model.registry.names:
            raise file_error(args.model, f"the model does not know the structure '{name}' "
                                         f"(it knows: {', '.join(model.registry.names)})")
    patients = parse_class_list(args.patients, "--patients") if args.patients else None
    records, mask_values = find_records(args.data, names, args.source, args.split, patients)
    values = {n: model.registry.value_of(n) for n in names}
    with progress.stage("read frames", len(records)) as stage:
        frames = load_frameset(records, values, model.size, mask_values, stage)
    predicted = predict_working_grid(model.build(device), frames.images, device, dtype)
    scores = confusion_scores(predicted, frames.labels, list(values.values()), frames.annotated)
    synthetic = is_synthetic_folder(args.data)
    # Counts, not names: the Slicer module keeps this report inside the model it exports (no path, no patient ID).
    report = {"model": Path(args.model).name, "step": model.step, "frames": len(frames),
              "patients": len(set(frames.patients)), "synthetic_data": synthetic,
              "grid": f"working grid {model.size[0]}x{model.size[1]} after black-border crop",
              "per_class": named_scores(scores, model.registry),
              "steps": {e.name: e.step for e in model.registry.entries},
              **group_means(scores, model.registry, model.step)}
    if synthetic:
        report["note"] = SYNTHETIC_NOTE
    with atomic_file(args.report) as tmp:  # NaN (a structure absent from prediction and truth) becomes null
        tmp.write_text(json.dumps(_without_nan(report), indent=1) + "\n", encoding="utf-8")
    progress.result(report=str(args.report), **{k: v for k, v in report.items() if k.startswith("mean_")})
    return 0


def _without_nan(value):
    if isinstance(value, dict):
        return {k: _without_nan(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_nan(v) for v in value]
    return None if isinstance(value, float) and value != value else value


def run_sample(args, progress) -> int:
    """Frames the replay generates (with the current model's pseudo-labels as overlays), to look at."""
    from distillseg.lap.replay import generate_replay

    device, dtype, _ = runtime(args, progress)
    model = load_lap_model(args.model)
    if not model.diffusion:
        raise file_error(args.model, "model holds no diffusion model (trained with --diffusion-iterations 0)")
    if args.n < 1:
        raise UserError("--n must be at least 1.")
    with progress.stage("sample", args.n) as stage:
        images, labels = generate_replay(model, model.build(device), args.n, args.confidence, device, dtype,
                                         args.seed, stage.update)
    colors = model.registry.colors()
    with atomic_directory(args.out) as tmp:
        for index in range(len(images)):
            frame = images[index].permute(1, 2, 0).numpy()
            write_frame(tmp / f"synthetic_{index:03d}.png", frame)
            write_overlay(tmp / f"synthetic_{index:03d}_pseudo_labels.png", frame, labels[index].numpy(), colors,
                          caption="SYNTHETIC replay frame")
        (tmp / "README.txt").write_text(
            "SYNTHETIC frames generated by the model's diffusion replay (no patient frame is stored in the model).\n"
            "*_pseudo_labels.png: the model's confident predictions on them (what a new step distils from).\n",
            encoding="utf-8")
    progress.result(out=str(args.out), frames=len(images), synthetic=True)
    return 0


def run_restore(args, progress) -> int:
    """Write an earlier version of a model (after step K) as a model of its own."""
    model = load_lap_model(args.model)
    restored = restore_version(model, args.step)
    with OutputLock(args.out):
        save_lap_model(args.out, restored)
    progress.result(model=str(args.out), step=restored.step, classes=restored.registry.labels_json())
    return 0
