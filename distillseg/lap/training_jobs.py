"""The ``lap train`` and ``lap learn`` jobs: read the data, train (resumably, under ``torchrun`` if launched so),
score, and write the model bundle (rank 0 only, atomically, under an output lock); ``distillseg.lap.jobs`` has
checked the output and the model's manifest before these run."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import torch

from distillseg.common.device import amp_dtype, describe_device, resolve_device, set_threads
from distillseg.common.checkpoint import training_output
from distillseg.common.distributed import barrier, init_world
from distillseg.contract.errors import UserError, file_error
from distillseg.lap.classes import ClassRegistry
from distillseg.lap.data import FrameSet, read_frames
from distillseg.lap.diffusion import DiffusionConfig
from distillseg.lap.diffusion_training import train_diffusion
from distillseg.lap.evaluation import confusion_scores, named_scores
from distillseg.lap.job_state import JobState
from distillseg.lap.model_bundle import LapModel, load_lap_model, save_lap_model
from distillseg.lap.prediction import predict_working_grid
from distillseg.lap.replay import generate_replay
from distillseg.lap.plop_thresholds import median_entropy_thresholds
from distillseg.lap.segmenter import Segmenter, SegmenterConfig
from distillseg.lap.segmenter_training import LoopOptions, SegmenterTrainer, StepInputs
from distillseg.lap.strategies import strategy_named
from distillseg.contract.frames import is_synthetic_folder


def runtime(args, progress):
    from distillseg.common.cli_support import seed_everything

    device = resolve_device(args.device)
    set_threads(args.threads)
    seed_everything(getattr(args, "seed", 0))  # segment and evaluate take no --seed: nothing in them is random
    dtype = amp_dtype(device, args.precision)
    world = init_world(device)
    progress.device(str(device), describe_device(device) + (f", rank {world.rank} of {world.size}"
                                                            if world.distributed else ""),
                    str(dtype).replace("torch.", "") if dtype else "fp32")
    return device, dtype, world


def _read(args, classes: list[str], class_values: dict[str, int], size, progress) -> FrameSet:
    frames = read_frames(args.data, classes, class_values, size, progress, source=args.source, split=args.split,
                         patients=args.patients, unknown_values=args.unknown_values)
    frames.synthetic = is_synthetic_folder(args.data)
    present = set(frames.labels.unique().tolist())
    for name, value in class_values.items():
        if value not in present:
            raise file_error(args.data, f"no chosen frame shows the structure '{name}' (all its masks are empty)")
    return frames


def _fit_scores(net: Segmenter, frames: FrameSet, values: list[int], device, dtype) -> dict:
    predicted = predict_working_grid(net, frames.images, device, dtype)
    return confusion_scores(predicted, frames.labels, values, frames.annotated)


def _diffusion(args, frames: FrameSet, config: DiffusionConfig, state: JobState, device, dtype, world, progress
               ) -> dict[str, torch.Tensor] | None:
    if args.diffusion_iterations <= 0:
        return None
    with progress.stage("diffusion", args.diffusion_iterations, start=state.iteration("diffusion")) as stage:
        return train_diffusion(frames.images, config, args.diffusion_iterations, args.batch_size, args.seed + 11,
                               device, dtype, world, state, stage, args.checkpoint_every)


# Options that name the user's files and folders: a model or checkpoint keeps none of them (file and folder names in
# hospitals often hold patient names or IDs); what a step learned from is described by counts (``FrameSet.summary``).
_PATH_OPTIONS = ("data", "out", "model", "eval_data")


def _job_key(args, verb: str) -> dict:
    """The options a checkpoint must share with the run that resumes it (paths included)."""
    skip = {"progress", "resume", "verb_function", "device", "threads", "method", "verb"}
    return {"verb": verb, **{k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(args).items()
                             if k not in skip}}


def _job_fingerprint(args, verb: str) -> str:
    """``_job_key`` as a SHA-256: what the checkpoint keeps to recognise its run, without the paths themselves."""
    return hashlib.sha256(json.dumps(_job_key(args, verb), sort_keys=True, default=str).encode()).hexdigest()


def _recorded_options(args, verb: str) -> dict:
    """The step's options as its model records them: no paths (a weights file is recorded as "file")."""
    options = {k: v for k, v in _job_key(args, verb).items() if k not in _PATH_OPTIONS}
    if options.get("encoder_weights") not in (None, "imagenet"):
        options["encoder_weights"] = "file"
    return options


def train(args, progress) -> int:
    """Step 0 (or the joint upper bound): learn ``--classes`` from ``--data``."""
    device, dtype, world = runtime(args, progress)
    classes = args.classes
    size = tuple(args.size)
    out = Path(args.out)
    registry = ClassRegistry().extended(classes, step=0)
    crop = _crop(args.crop, size)
    _check_focus(args.focus, args.zoom, crop, size)
    started = time.monotonic()
    with training_output(out, world.is_main):
        frames = _read(args, classes, {n: registry.value_of(n) for n in classes}, size, progress)
        state = JobState(out, _job_fingerprint(args, "train"), world, args.resume, progress)
        config = SegmenterConfig(backbone=args.backbone)
        net = Segmenter(config, registry.num_outputs)
        if args.encoder_weights:
            from distillseg.lap.encoder_weights import load_encoder_weights

            loaded = load_encoder_weights(net.encoder, args.encoder_weights, args.backbone)
            progress.log(f"loaded {loaded} pretrained encoder tensors")
        trainer = SegmenterTrainer(net, frames.images, frames.labels,
                                   LoopOptions(args.iterations, args.batch_size, args.lr, seed=args.seed,
                                               checkpoint_every=args.checkpoint_every, dice_weight=args.dice_weight,
                                               zoom=args.zoom, crop=crop, focus=args.focus,
                                               class_balance=args.class_balance), device, dtype,
                                   world)
        with progress.stage("segmenter", args.iterations, start=state.iteration("segmenter")) as stage:
            terms = trainer.run(state, "segmenter", stage)
        # Replay frames are generated at half the training windows' size (half the working size without --crop).
        window = args.crop or size
        diffusion_config = DiffusionConfig(size=(window[0] // 2, window[1] // 2), sample_steps=args.sample_steps)
        diffusion = _diffusion(args, frames, diffusion_config, state, device, dtype, world, progress)
        scores = _fit_scores(net, frames, registry_values(registry), device, dtype)
        entry = {"step": 0, "strategy": "base", "classes_added": classes, "data": frames.summary(),
                 "synthetic_data": frames.synthetic, "options": _recorded_options(args, "train"),
                 "scores_on_training_frames": named_scores(scores, registry), "loss_terms": terms,
                 "seconds": round(time.monotonic() - started, 1), "device": str(device), "world_size": world.size}
        model = LapModel(config=config, registry=registry, size=size, step=0,
                         segmenter={k: v.cpu() for k, v in net.state_dict().items()},
                         diffusion_config=diffusion_config, history=[entry],
                         synthetic_training_data=frames.synthetic,
                         diffusion={0: diffusion} if diffusion is not None else {})
        if world.is_main:
            save_lap_model(out, model)
            state.remove()
        barrier(world)
    progress.result(model=str(out), step=0, classes=registry.labels_json(), synthetic_data=frames.synthetic,
                    scores_on_training_frames=named_scores(scores, registry), seconds=entry["seconds"])
    return 0


def _crop(crop, size) -> tuple[int, int] | None:
    """The training window (h, w), checked against the working ``size``; None = whole frames."""
    if crop is None:
        return None
    crop = (int(crop[0]), int(crop[1]))
    if crop[0] > size[0] or crop[1] > size[1]:
        raise UserError(f"--crop {crop[0]} {crop[1]} is larger than the working size {size[0]} {size[1]}; "
                        "choose a window inside the frame.")
    return crop


def _check_focus(focus: float, zoom: float, crop, size) -> None:
    """``--focus`` places training windows; with whole frames (no ``--zoom`` < 1, no ``--crop`` smaller than the
    working ``size``) there are none to place."""
    if focus > 0 and zoom >= 1 and (crop is None or tuple(crop) == tuple(size)):
        raise UserError(f"--focus {focus:g} centres training windows on structures, but this step trains on whole "
                        "frames; add --zoom below 1 or --crop H W.")


def registry_values(registry: ClassRegistry) -> list[int]:
    return [e.value for e in registry.entries]


def _evaluate_on(net: Segmenter, registry: ClassRegistry, data, size, device, dtype, progress,
                 unknown_values: str) -> dict:
    """Scores of ``net`` on a labelled folder, for the structures of ``registry`` that it annotates."""
    names = registry.names
    frames = read_frames(data, names, {n: registry.value_of(n) for n in names}, size, progress,
                         "read evaluation frames", unknown_values=unknown_values)
    return named_scores(_fit_scores(net, frames, registry_values(registry), device, dtype), registry)


def learn(args, progress) -> int:
    """Step t: learn ``--new-classes`` from new patients' frames without the old patients' frames."""
    device, dtype, world = runtime(args, progress)
    model = load_lap_model(args.model)
    new = args.new_classes
    step = model.step + 1
    registry = model.registry.extended(new, step=step)
    strategy = strategy_named(args.strategy, kd_weight=args.kd_weight, pod_weight=args.pod_weight,
                              contrastive_weight=args.contrastive_weight, dice_weight=args.dice_weight,
                              confidence=args.confidence, pseudo_labels=args.pseudo_labels)
    crop = _crop(args.crop or model.history[0]["options"].get("crop"), model.size)
    _check_focus(args.focus, args.zoom, crop, model.size)
    out = Path(args.out)
    started = time.monotonic()
    with training_output(out, world.is_main):
        frames = _read(args, new, {n: registry.value_of(n) for n in new}, model.size, progress)
        state = JobState(out, _job_fingerprint(args, "learn"), world, args.resume, progress)
        previous = model.build(device)
        net = model.build(device)
        net.grow_head(len(new))
        replay_images = replay_labels = None
        if strategy.replay and args.replay != 0:
            replay = state.group("replay")
            if replay is None:
                count = args.replay if args.replay is not None else len(frames)
                with progress.stage("replay", count) as stage:
                    replay_images, replay_labels = generate_replay(model, previous, count, strategy.confidence,
                                                                   device, dtype, args.seed, stage.update)
                state.record("replay", count, done=True, groups={"replay": {"images": replay_images,
                                                                          "labels": replay_labels}})
            else:
                replay_images, replay_labels = replay["images"], replay["labels"]
        thresholds = None
        if strategy.pseudo_labels and strategy.entropy_thresholds:
            thresholds = median_entropy_thresholds(previous, frames.images, device, dtype)
            progress.log("pseudo-label entropy thresholds (PLOP): "
                         + ", ".join(f"{t:.3f}" for t in thresholds.tolist()))
        inputs = StepInputs(strategy, previous, model.registry.num_outputs, replay_images, replay_labels, thresholds)
        options = LoopOptions(args.iterations, args.batch_size, args.lr, seed=args.seed,
                              checkpoint_every=args.checkpoint_every, freeze_batchnorm=True, zoom=args.zoom,
                              crop=crop, focus=args.focus, class_balance=args.class_balance)
        trainer = SegmenterTrainer(net, frames.images, frames.labels, options, device, dtype, world, inputs)
        if trainer.projection is not None and model.projection is not None:
            trainer.projection.load_state_dict(model.projection)
        with progress.stage("segmenter", args.iterations, start=state.iteration("segmenter")) as stage:
            terms = trainer.run(state, "segmenter", stage)
        diffusion = _diffusion(args, frames, model.diffusion_config, state, device, dtype, world, progress)
        scores = {"after_on_training_frames": named_scores(
            _fit_scores(net, frames, [registry.value_of(n) for n in new], device, dtype), registry)}
        if args.eval_data:
            scores["before"] = _evaluate_on(previous, model.registry, args.eval_data, model.size, device, dtype,
                                            progress, args.unknown_values)
            scores["after"] = _evaluate_on(net, registry, args.eval_data, model.size, device, dtype, progress,
                                           args.unknown_values)
        entry = {"step": step, "strategy": strategy.name, "strategy_settings": strategy.to_json(),
                 "classes_added": new, "data": frames.summary(), "synthetic_data": frames.synthetic,
                 "replayed_frames": 0 if replay_images is None else len(replay_images),
                 **({"pseudo_label_entropy_thresholds": [round(t, 4) for t in thresholds.tolist()]}
                    if thresholds is not None else {}),
                 "options": _recorded_options(args, "learn"), "scores": scores, "loss_terms": terms,
                 "seconds": round(time.monotonic() - started, 1), "device": str(device), "world_size": world.size}
        projection = trainer.weights().get("projection", model.projection)
        new_model = LapModel(config=model.config, registry=registry, size=model.size, step=step,
                             segmenter={k: v.cpu() for k, v in net.state_dict().items()},
                             diffusion_config=model.diffusion_config, history=model.history + [entry],
                             synthetic_training_data=model.synthetic_training_data or frames.synthetic,
                             projection=projection,
                             diffusion={**model.diffusion, **({step: diffusion} if diffusion is not None else {})},
                             earlier={**model.earlier, model.step: model.segmenter}, source=model.source)
        if world.is_main:
            save_lap_model(out, new_model)
            state.remove()
        barrier(world)
    progress.result(model=str(out), step=step, strategy=strategy.name, classes=registry.labels_json(),
                    synthetic_data=new_model.synthetic_training_data, scores=scores, seconds=entry["seconds"])
    return 0
