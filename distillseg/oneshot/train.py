"""``distillseg oneshot train``: prepare the data, train the augmenter, distil the student, write the bundle.

Both stages checkpoint to ``<out>.checkpoint/`` every ``checkpoint_every`` steps (and every
``checkpoint_seconds``); ``resume=True`` continues from there with the same per-step random streams, so a resumed
run ends where an uninterrupted one would. The bundle appears only when training has finished; a cancelled or
killed job leaves the checkpoint (for ``--resume``) and no bundle.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from distillseg.common.bundle import Bundle, save_bundle
from distillseg.common.checkpoint import (open_checkpoint, optimizer_from_flat, optimizer_to_flat, save_checkpoint,
                                          training_output)
from distillseg.common.cli_support import seed_everything
from distillseg.common.device import amp_dtype, autocast, describe_device, peak_memory_bytes, resolve_device
from distillseg.common.distributed import (World, all_reduce_mean, barrier, global_batch, init_world, shutdown_world,
                                         wrap_ddp)
from distillseg.contract import paths
from distillseg.contract.errors import OutOfMemoryError, UserError
from distillseg.contract.manifest import ONESHOT, sha256_of
from distillseg.common.memory import budget_bytes, human
from distillseg.common.progress import Progress
from distillseg.common.volume_io import read_image
from distillseg.oneshot.data import align_scan, prepare_atlas
from distillseg.oneshot.atlas_prior import atlas_prior
from distillseg.oneshot.augmenter_source import source_augmenter, source_bundle, source_options, source_record
from distillseg.oneshot.distill import DistillationObjective, DistillOptions, build_networks
from distillseg.oneshot.instance_optimization import refine_velocity
from distillseg.oneshot.memory_plan import FIXED_OVERHEAD, augmenter_training_bytes, training_bytes
from distillseg.oneshot.prealign import AtlasAligner, PrealignOptions
from distillseg.oneshot.synthesis import SynthesisOptions, SyntheticPairSampler
from distillseg.oneshot.train_augmenter import AugmenterObjective, AugmenterOptions, build_augmenter, pair_batch

CURVE_EVERY = 10  # steps between points of the learning curve stored in the manifest


@dataclass
class TrainOptions:
    atlas: str
    atlas_labels: str
    unlabeled: list[str]
    out: str
    label_names: str | None = None
    series_uids: tuple[str, ...] = ()  # the series to read from DICOM folders that hold several
    spacing: str = "auto"
    modality: str = "auto"
    ct_window: tuple[float, float] = (-1000.0, 1000.0)
    augmenter: AugmenterOptions = field(default_factory=AugmenterOptions)
    distill: DistillOptions = field(default_factory=DistillOptions)
    synthesis: SynthesisOptions = field(default_factory=SynthesisOptions)
    prealign: bool = True
    device: str = "auto"
    precision: str = "auto"
    seed: int = 0
    resume: bool = False
    checkpoint_every: int = 50
    checkpoint_seconds: float = 300.0
    max_memory: str | None = None
    description: str = ""  # the user's own words about the training data, kept in the manifest
    augmenter_from: str | None = None  # an earlier model whose trained augmenter this training starts from


# Options that name the user's files: never written into a bundle or checkpoint (file and folder names in hospitals
# often hold patient names or IDs, DICOM UIDs lead to the patient); the inputs are described by content instead
# (``_input_records``).
_PATH_OPTIONS = ("atlas", "atlas_labels", "unlabeled", "out", "label_names", "series_uids", "augmenter_from")


def _settings(options: TrainOptions) -> dict:
    """The training options as JSON, without the ones that name files, the device or resuming."""
    settings = json.loads(json.dumps(asdict(options), default=str))
    return {k: v for k, v in settings.items() if k not in (*_PATH_OPTIONS, "resume", "device")}


def _fingerprint(options: TrainOptions, records: list[dict]) -> str:
    """What a checkpoint must agree with to be resumed: the inputs' contents and every training option (a hash: the
    checkpoint holds no path)."""
    return hashlib.sha256(json.dumps([records, _settings(options)], sort_keys=True).encode()).hexdigest()


def _input_records(options: TrainOptions, source: Bundle | None) -> list[dict]:
    """Each input by content, in command-line order: its role and SHA-256 (no name, no path; a DICOM folder: of
    the series read from it)."""
    roles = [("atlas", options.atlas), ("atlas labels", options.atlas_labels)]
    roles += [("unlabelled", path) for path in options.unlabeled]
    if options.label_names:
        roles.append(("label names", options.label_names))

    def digest(path) -> str:
        if Path(path).is_dir():
            from distillseg.common.dicom_series import series_sha256

            return series_sha256(path, options.series_uids)
        return sha256_of(path)

    records = [{"role": role, "sha256": digest(path)} for role, path in roles]
    if source is not None:  # by its weights: a checkpoint must not resume onto another augmenter
        records.append({"role": "augmenter source", "sha256": source_record(source)["augmenter_sha256"]})
    return records


def _per_world(options: TrainOptions, world: World) -> TrainOptions:
    """``options`` with both global batches settled for this number of processes (``global_batch``)."""
    return replace(options,
                   augmenter=replace(options.augmenter, batch_pairs=global_batch(
                       options.augmenter.batch_pairs, world, "--batch-pairs", single=2)),
                   distill=replace(options.distill, batch_size=global_batch(
                       options.distill.batch_size, world, "--batch-size")))


# Stage numbers in the random streams: the augmenter's and the distillation's draws never overlap.
AUGMENTER_STAGE, DISTILL_STAGE = 1, 2


def _stage_seed(seed: int, stage: int) -> int:
    """The root of a stage's random streams (``_generators``) and of its networks' first weights."""
    return seed * 1_000_003 + stage


def _generators(seed: int, stage: int, step: int, batch: int, world: World) -> list[torch.Generator]:
    """This process's share of the step's per-sample random streams: samples ``rank, rank + N, …`` of ``batch``.

    Each (seed, stage, step, sample) has its own stream, so a resumed run draws exactly what the first run would,
    and N processes draw together exactly what one process would.
    """
    return [torch.Generator().manual_seed(((_stage_seed(seed, stage) * 10_007_777 + step) * 1009 + sample) % 2**63)
            for sample in range(world.rank, batch, world.size)]


class _Checkpointer:
    """Saves the training state every N steps / T seconds and restores it on resume."""

    def __init__(self, path: Path, options: TrainOptions, fingerprint: str, world: World):
        self.path, self.options, self.fingerprint = path, options, fingerprint
        self.last_save = time.monotonic()
        self.extra: dict[str, dict[str, torch.Tensor]] = {}  # tensor groups saved with every checkpoint
        self.state = open_checkpoint(path, options.resume, fingerprint, world.is_main)

    def due(self, step: int, total: int) -> bool:
        return (step % self.options.checkpoint_every == 0 or step == total
                or time.monotonic() - self.last_save > self.options.checkpoint_seconds)

    def save(self, meta: dict, networks: dict[str, torch.nn.Module], optimizer: torch.optim.Optimizer) -> None:
        optimizer_tensors, optimizer_meta = optimizer_to_flat(optimizer)
        groups = {name: net.state_dict() for name, net in networks.items()}
        groups.update(self.extra)
        groups["optimizer"] = optimizer_tensors
        save_checkpoint(self.path, groups, {**meta, "optimizer": optimizer_meta, "job": self.fingerprint})
        self.last_save = time.monotonic()


def _run_stage(name: str, index: int, total: int, batch: int, networks: dict, optimizer, scheduler, step_function,
               checkpointer: _Checkpointer, progress: Progress, options: TrainOptions, meta: dict,
               world: World) -> None:
    """The resumable loop shared by both stages; ``step_function(generators)`` returns (loss, parts).

    Only rank 0 checkpoints; every rank replays the same schedule.
    """
    start = meta.get("steps", {}).get(name, 0)
    curve = meta.setdefault("curves", {}).setdefault(name, [])
    for _ in range(start):
        scheduler.step()  # the schedule is a function of the step: replay it
    for net in networks.values():
        if any(p.requires_grad for p in net.parameters()):
            net.train()
    began = time.monotonic() - meta.get("seconds", {}).get(name, 0.0)
    with progress.stage(name, total=total, start=start) as bar:
        for step in range(start + 1, total + 1):
            loss, parts = step_function(_generators(options.seed, index, step, batch, world))
            if not torch.isfinite(loss):
                raise UserError(f"Training diverged at {name} step {step} (loss {float(loss)}); "
                                "try a lower learning rate or another --seed.")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            value = float(loss.detach())
            if world.distributed:  # report the global batch's loss, as one process given that batch would
                shown = all_reduce_mean(torch.tensor([value, *parts.values()], device=loss.device), world)
                value, parts = float(shown[0]), dict(zip(parts, map(float, shown[1:])))
            bar.update(step, loss=value, **parts)
            if step % CURVE_EVERY == 0 or step == total:
                curve.append([step, round(value, 5), round(time.monotonic() - began, 1),
                              {k: round(v, 5) for k, v in parts.items()}])
            if world.is_main and checkpointer.due(step, total):
                meta.setdefault("steps", {})[name] = step
                meta.setdefault("seconds", {})[name] = round(time.monotonic() - began, 1)
                checkpointer.save(meta, networks, optimizer)
    meta.setdefault("steps", {})[name] = total
    meta.setdefault("seconds", {})[name] = round(time.monotonic() - began, 1)


def _restore(checkpointer: _Checkpointer, networks: dict, optimizer, stage: str) -> None:
    """Load networks (and the optimizer if the checkpoint is in this stage) from the checkpoint, if any."""
    if checkpointer.state is None:
        return
    groups, meta = checkpointer.state
    for name, net in networks.items():
        if name in groups:
            net.load_state_dict(groups[name])
    if meta.get("stage") == stage and "optimizer" in groups:
        optimizer_from_flat(optimizer, groups["optimizer"], meta["optimizer"])


def _refined_velocities(augmenter, atlas_image: torch.Tensor, targets: list[torch.Tensor], options: TrainOptions,
                        checkpointer: _Checkpointer, progress: Progress) -> list[torch.Tensor]:
    """Atlas -> target velocity fields: the trained augmenter's, refined by instance optimisation (kept in the
    checkpoint, so a resumed run does not refine again)."""
    saved = checkpointer.state[0].get("velocities") if checkpointer.state else None
    if saved is not None and len(saved) == len(targets):
        velocities = [saved[str(i)].to(atlas_image.device) for i in range(len(targets))]
    else:
        iterations = options.augmenter.refine_iterations
        velocities = []
        with progress.stage("refine", total=len(targets) * iterations) as bar:
            for index, target in enumerate(targets):
                with torch.no_grad():
                    initial = augmenter.velocity(atlas_image, target).float()
                velocities.append(refine_velocity(
                    augmenter, atlas_image, target, initial, iterations, lr=options.augmenter.refine_lr,
                    window=options.augmenter.window, smooth_weight=options.augmenter.refinement_smoothness,
                    step_callback=lambda step, loss, i=index: bar.update(i * iterations + step, loss=loss)))
    checkpointer.extra["velocities"] = {str(i): v.cpu() for i, v in enumerate(velocities)}
    return velocities


def _warmup_cosine(optimizer, warmup: int, total: int):
    from monai.optimizers import WarmupCosineSchedule

    return WarmupCosineSchedule(optimizer, warmup_steps=min(warmup, max(total - 1, 0)), t_total=max(total, 1))


def _prepare(options: TrainOptions, device: torch.device, dtype, progress: Progress):
    """The atlas on its working grid, the unlabelled scans pre-aligned into it, and each scan's own grid:
    (atlas, [(1, 1, I, J, K)], [(shape, spacing in mm)])."""
    atlas = prepare_atlas(options.atlas, options.atlas_labels, options.label_names, options.spacing,
                          options.modality, options.ct_window, device.type,
                          check_grid=lambda grid, classes: _check_memory(options, grid.shape, classes, device, dtype),
                          series_uids=options.series_uids)
    progress.log(f"working grid {atlas.grid.shape} at {atlas.grid.spacing[0]:.2f} mm, "
                 f"{len(atlas.values) - 1} structures")
    targets, grids = [], []
    aligner = AtlasAligner(atlas.image.to(device), atlas.grid, PrealignOptions(seed=options.seed)) \
        if options.prealign else None
    with progress.stage("prealign", total=len(options.unlabeled)) as bar:
        for number, path in enumerate(options.unlabeled, 1):
            volume = read_image(path, options.series_uids)
            aligned = align_scan(volume, atlas.grid, atlas.normalization, aligner, device)
            targets.append(aligned.image.to(device)[None, None])
            grids.append(([int(s) for s in volume.shape], [float(s) for s in volume.spacing]))
            bar.update(number)
    return atlas, targets, grids


def _check_memory(options: TrainOptions, grid_shape, num_classes: int, device: torch.device, dtype) -> None:
    """Stop before the working grid is allocated when it and one training step would not fit the memory budget, and
    say what to change."""
    patch = options.synthesis.patch or grid_shape
    voxels = int(np.prod([min(p, s) for p, s in zip(patch, grid_shape)]))
    # The grid itself: the atlas image and classes, every pre-aligned scan, and the label resampling's buffers.
    grid_data = int(np.prod(grid_shape)) * (36 + 4 * len(options.unlabeled))
    student = training_bytes(options.distill.channels, num_classes, voxels, dtype is not None,
                             options.distill.checkpointing, options.distill.batch_size,
                             teacher=options.distill.runs_teacher)
    # The augmenter trains on whole grids whatever the student's patch size (unless it comes trained).
    augmenter = augmenter_training_bytes(int(np.prod(grid_shape)), dtype is not None, options.augmenter.batch_pairs) \
        if options.augmenter.iterations > 0 and not options.augmenter_from else 0
    needed = FIXED_OVERHEAD + grid_data + max(student, augmenter)
    budget = budget_bytes(device, options.max_memory)
    if needed > budget:
        advice = ("a coarser --spacing (the augmenter trains on the whole grid)" if augmenter > student else
                  "a smaller --patch-size (e.g. 32 32 32), --checkpointing, a coarser --spacing or --precision bf16")
        raise OutOfMemoryError(
            f"A training step on the {'x'.join(map(str, grid_shape))} working grid needs about {human(needed)} "
            f"but {human(budget)} is available; use {advice}.")


def _manifest(options: TrainOptions, atlas, student, augmenter, device, dtype, meta: dict,
              source: Bundle | None) -> dict:
    return {
        "method": ONESHOT,
        "name": Path(options.out).name,
        "labels": atlas.table.to_json(),
        "class_values": atlas.values,
        "networks": {"student": student.config, "augmenter": augmenter.config},
        "preprocessing": {
            "grid": atlas.grid.to_json(),
            "intensity": atlas.normalization.to_json(),
            "prealign": options.prealign,
            "atlas_spacing": atlas.source_spacing,
            "atlas_prior_sigma": options.distill.prior_sigma,  # the student's prior input (when it takes one)
        },
        "contents": "student and augmenter weights; the atlas image and labels on the working grid "
                    "(needed to pre-align new scans)",
        "training": {
            "description": options.description,
            "inputs": meta.get("inputs", []),
            "options": _settings(options),
            "device": describe_device(device), "precision": str(dtype) if dtype else "fp32",
            "processes": meta.get("processes", 1),
            "seconds": meta.get("seconds", {}), "curves": meta.get("curves", {}),
            **({"augmenter_from": source_record(source)} if source is not None else {}),
        },
    }


def train_oneshot(options: TrainOptions, progress: Progress) -> Path:
    """Run the whole training job (one process, or one of ``torchrun``'s) and return the bundle's path; the
    inputs and the output were checked before (``jobs.run_train``)."""
    out = Path(options.out)
    device = resolve_device(options.device)
    dtype = amp_dtype(device, options.precision)
    world = init_world(device)
    options = _per_world(options, world)
    # Read once: every use below (options, checkpoint fingerprint, weights, manifest) sees the same source.
    source = source_bundle(options.augmenter_from) if options.augmenter_from else None
    if source is not None:  # the manifest then says how the augmenter really was trained
        options = replace(options, augmenter=source_options(source, options.augmenter))
    progress.device(str(device), describe_device(device), str(dtype).replace("torch.", "") if dtype else "fp32")
    seed_everything(options.seed)
    try:
        with training_output(out, world.is_main):
            checkpoint_path = paths.checkpoint_path(out)
            barrier(world)
            records = _input_records(options, source)
            checkpointer = _Checkpointer(checkpoint_path, options, _fingerprint(options, records), world)
            meta = dict(checkpointer.state[1]) if checkpointer.state else {}
            meta.pop("optimizer", None)
            meta["processes"] = world.size
            atlas, targets, grids = _prepare(options, device, dtype, progress)
            grids = [(atlas.source_shape, atlas.source_spacing)] * 2 + grids  # the atlas image and its labels
            meta["inputs"] = [{**record, "shape": shape, "spacing_mm": spacing}
                              for record, (shape, spacing) in zip(records, grids)] + records[len(grids):]
            atlas_image = atlas.image.to(device)[None, None]
            images = [atlas_image, *targets]
            amp = autocast(device, dtype)

            if source is not None:
                augmenter = source_augmenter(source, atlas.image, atlas.grid.to_json(), device)
                meta.setdefault("stage", "distill")
            else:
                augmenter = build_augmenter(options.augmenter).to(device)
            if meta.get("stage", "augmenter") == "augmenter":
                objective = AugmenterObjective(augmenter, options.augmenter)
                trained = wrap_ddp(objective, device, world,
                                   find_unused_parameters=options.augmenter.contrastive_weight == 0)
                optimizer = torch.optim.Adam(augmenter.parameters(), lr=options.augmenter.lr)
                _restore(checkpointer, {"augmenter": augmenter}, optimizer, "augmenter")
                meta["stage"] = "augmenter"
                _run_stage("augmenter", AUGMENTER_STAGE, options.augmenter.iterations, options.augmenter.batch_pairs,
                           {"augmenter": augmenter}, optimizer,
                           torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0),
                           lambda generators: trained(*pair_batch(images, generators), amp),
                           checkpointer, progress, options, meta, world)
                meta["stage"] = "distill"
            else:
                _restore(checkpointer, {"augmenter": augmenter}, None, "augmenter")
            augmenter.eval().requires_grad_(False)

            # The student's first weights depend on the seed alone, not on whether the augmenter trained here
            # (its training draws from the same global stream): a student trained --augmenter-from a same-seed
            # model starts where it would have started after training that augmenter itself.
            torch.manual_seed(_stage_seed(options.seed, DISTILL_STAGE))
            teacher, student = build_networks(options.distill, len(atlas.values))
            objective = DistillationObjective(teacher, student, options.distill).to(device)
            trained = wrap_ddp(objective, device, world, find_unused_parameters=not (
                options.distill.runs_teacher and options.distill.recon_weight > 0))
            optimizer = torch.optim.Adam(objective.parameters(), lr=options.distill.lr)
            _restore(checkpointer, objective.training_networks(), optimizer, "distill")
            velocities = _refined_velocities(augmenter, atlas_image, targets, options, checkpointer, progress)
            prior = atlas_prior(atlas.classes.to(device), len(atlas.values), options.distill.prior_sigma) \
                if options.distill.atlas_prior else None
            sampler = SyntheticPairSampler(augmenter, atlas_image, atlas.classes.to(device)[None, None],
                                           len(atlas.values), targets, options.synthesis, velocities, prior)

            def distill_step(generators):
                pair = sampler.sample_batch(generators)
                return trained(pair.image, pair.classes, pair.teacher_image, amp, pair.prior)

            _run_stage("distill", DISTILL_STAGE, options.distill.iterations, options.distill.batch_size,
                       {"augmenter": augmenter, **objective.training_networks()}, optimizer,
                       _warmup_cosine(optimizer, options.distill.warmup, options.distill.iterations),
                       distill_step, checkpointer, progress, options, meta, world)
            if world.is_main:
                weights = {
                    "student": student.state_dict(),
                    "augmenter": augmenter.state_dict(),
                    "atlas": {"image": atlas.image.half().cpu(),
                              "classes": atlas.classes.to(torch.uint8 if len(atlas.values) < 256 else torch.int16)
                              .cpu()},
                }
                save_bundle(out, _manifest(options, atlas, student, augmenter, device, dtype, meta, source), weights)
                shutil.rmtree(checkpoint_path, ignore_errors=True)
            barrier(world)
    finally:
        shutdown_world()
    progress.result(model=str(out), structures=len(atlas.values) - 1, seconds=meta.get("seconds", {}),
                    processes=world.size, peak_memory_mb=round(peak_memory_bytes(device) / 2**20))
    return out
