"""The ``lap`` jobs that do not train: demo-data, segment, evaluate, sample, restore (``distillseg.lap.jobs``
checks their outputs and the model's manifest before these run)."""

from __future__ import annotations

from pathlib import Path

from distillseg.common.distributed import shard
from distillseg.common.frame_views import write_overlay
from distillseg.common.model_cache import cached_model
from distillseg.common.reports import write_report
from distillseg.contract.atomic import OutputLock, StagedFiles, atomic_directory
from distillseg.contract.errors import file_error
from distillseg.contract.frames import (INDEX_MAP, PICTURE, REPLAY_FRAMES, is_synthetic_folder, read_frame,
                                       write_frame, write_index_png, write_synthetic_marker)
from distillseg.lap.data import read_frames
from distillseg.lap.evaluation import confusion_scores, group_means, named_scores
from distillseg.lap.model_bundle import load_lap_model, restore_version, save_lap_model
from distillseg.lap.prediction import predict_frame, predict_working_grid
from distillseg.lap.synthetic_scenes import SYNTHETIC_NOTE, write_demo_data
from distillseg.lap.training_jobs import runtime

MODEL_ON_SYNTHETIC_CAPTION = "model trained on SYNTHETIC data"


def demo_data(args, progress) -> int:
    with progress.stage("demo frames", args.patients * args.frames_per_patient) as stage:
        summary = write_demo_data(args.out, args.patients, args.frames_per_patient, tuple(args.size), args.seed,
                                  stage=stage)
    progress.log(SYNTHETIC_NOTE)
    progress.result(out=str(args.out), **summary)
    return 0


def _loaded(path, device):
    model = load_lap_model(path)
    return model, model.build(device)


def segment(args, progress, outputs: dict[Path, list[Path]]) -> int:
    """Write an index PNG per frame (0 = background, value = class), and optionally a colour overlay, at the
    ``outputs`` ``jobs.segment_outputs`` checked; all of them appear together at the end, so a job that fails or is
    cancelled leaves none."""
    device, dtype, world = runtime(args, progress)
    model, net = cached_model(args, str(device), lambda: _loaded(args.model, device), progress)
    mine = shard(list(outputs), world)
    written: list[Path] = []
    caption = MODEL_ON_SYNTHETIC_CAPTION if model.synthetic_training_data else None
    with StagedFiles() as staged, progress.stage("segment", len(mine)) as stage:
        for number, path in enumerate(mine, 1):
            frame = read_frame(path)
            labels = predict_frame(net, frame, model.size, device, dtype)
            index_path, *overlay_path = outputs[path]
            written.append(write_index_png(index_path, labels, staged, INDEX_MAP))
            if overlay_path:
                written.append(write_overlay(overlay_path[0], frame, labels, model.registry.colors(),
                                             caption=caption, staged=staged, kind=PICTURE))
            stage.update(number)
    progress.result(outputs=[str(p) for p in written], classes=model.registry.labels_json(),
                    model_trained_on_synthetic_data=model.synthetic_training_data)
    return 0


def evaluate(args, progress) -> int:
    """IoU and Dice per structure on a labelled folder, and the old/new/all means of the model's latest step."""
    device, dtype, _ = runtime(args, progress)
    model = load_lap_model(args.model)
    names = args.classes or model.registry.names
    for name in names:
        if name not in model.registry.names:
            raise file_error(args.model, f"the model does not know the structure '{name}' "
                                         f"(it knows: {', '.join(model.registry.names)})")
    values = {n: model.registry.value_of(n) for n in names}
    frames = read_frames(args.data, names, values, model.size, progress, source=args.source, split=args.split,
                         patients=args.patients, unknown_values=args.unknown_values)
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
    write_report(args.report, _without_nan(report))  # NaN (absent from prediction and truth) becomes null
    progress.result(report=str(args.report), **{k: v for k, v in report.items() if k.startswith("mean_")})
    return 0


def _without_nan(value):
    if isinstance(value, dict):
        return {k: _without_nan(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_nan(v) for v in value]
    return None if isinstance(value, float) and value != value else value


def sample(args, progress) -> int:
    """Frames the replay generates (with the current model's pseudo-labels as overlays), to look at."""
    from distillseg.lap.replay import generate_replay

    device, dtype, _ = runtime(args, progress)
    model = load_lap_model(args.model)
    if not model.diffusion:
        raise file_error(args.model, "model holds no diffusion model (trained with --diffusion-iterations 0)")
    with progress.stage("sample", args.n) as stage:
        images, labels = generate_replay(model, model.build(device), args.n, args.confidence, device, dtype,
                                         args.seed, stage.update)
    colors = model.registry.colors()
    with atomic_directory(args.out, REPLAY_FRAMES) as tmp:
        for index in range(len(images)):
            frame = images[index].permute(1, 2, 0).numpy()
            write_frame(tmp / f"synthetic_{index:03d}.png", frame)
            write_overlay(tmp / f"synthetic_{index:03d}_pseudo_labels.png", frame, labels[index].numpy(), colors,
                          caption="SYNTHETIC replay frame")
        (tmp / "README.txt").write_text(
            "SYNTHETIC frames generated by the model's diffusion replay (no patient frame is stored in the model).\n"
            "*_pseudo_labels.png: the model's confident predictions on them (what a new step distils from).\n",
            encoding="utf-8")
        write_synthetic_marker(tmp, "SYNTHETIC frames generated by a model's diffusion replay.", "lap-replay-frames")
    progress.result(out=str(args.out), frames=len(images), synthetic=True)
    return 0


def restore(args, progress) -> int:
    """Write an earlier version of a model (after step K) as a model of its own."""
    model = load_lap_model(args.model)
    restored = restore_version(model, args.step)
    with OutputLock(args.out):
        save_lap_model(args.out, restored)
    progress.result(model=str(args.out), step=restored.step, classes=restored.registry.labels_json())
    return 0
