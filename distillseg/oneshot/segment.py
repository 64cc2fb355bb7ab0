"""``distillseg oneshot segment``: label maps for scans, each on its own grid, written atomically.

Under ``torchrun`` the inputs are shared round-robin between the processes and each output is written once.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from distillseg.common.bundle import load_bundle
from distillseg.common.dicom_seg import Algorithm, is_seg_path, write_seg
from distillseg.common.device import amp_dtype, describe_device, peak_memory_bytes, resolve_device, set_threads
from distillseg.common.distributed import shard, world_from_env
from distillseg.contract.manifest import ONESHOT
from distillseg.common.volume_io import LABEL_MAP, read_image, write_labels
from distillseg.contract.atomic import StagedFiles
from distillseg.common.memory import budget_bytes
from distillseg.common.model_cache import cached_model
from distillseg.oneshot.jobs import series_uids
from distillseg.oneshot.memory_plan import sliding_window
from distillseg.oneshot.predict import OneShotPredictor


def keep_largest_components(labels: np.ndarray, predictor: OneShotPredictor, which: str | None) -> np.ndarray:
    """``--keep-largest``: keep the largest connected component (MONAI ``KeepLargestConnectedComponent``, full
    connectivity) of every structure (``which="all"``), of the structures that are one piece in the atlas
    (``"atlas"``: a fragmented structure such as the choroid plexus keeps all its pieces, since its largest piece
    need not be the right one), or of none (None: ``labels`` unchanged)."""
    from monai.transforms import KeepLargestConnectedComponent

    if which is None:
        return labels
    values = predictor.values.tolist() if which == "all" else predictor.one_piece_values
    present = [int(v) for v in values if v != 0 and np.any(labels == v)]
    if not present:
        return labels
    cleaned = KeepLargestConnectedComponent(applied_labels=present, is_onehot=False, independent=True)(
        torch.from_numpy(labels.astype(np.int32))[None])
    return np.asarray(cleaned[0]).astype(labels.dtype)


def load_predictor(args) -> OneShotPredictor:
    """Device, precision and the predictor for ``--model`` as the CLI options say."""
    set_threads(args.threads)
    device = resolve_device(args.device)
    dtype = amp_dtype(device, args.precision)
    bundle = load_bundle(args.model, method=ONESHOT)
    if args.sliding_window:
        window = tuple(args.sliding_window)
    else:
        manifest = bundle.manifest
        grid = manifest["preprocessing"]["grid"]["shape"]
        window = sliding_window(grid, manifest["networks"]["student"]["channels"], len(manifest["class_values"]),
                                dtype is not None, budget_bytes(device, args.max_memory))
        # A student trained on patches runs best on windows of that size: its instance norms saw patch statistics
        # (whole-grid inference measured 0.66 vs 0.71 mean Dice on the real brain pair, docs/oneshot.md).
        trained = manifest.get("training", {}).get("options", {}).get("synthesis", {}).get("patch")
        if trained:
            window = tuple(min(t, w, g) for t, w, g in zip(trained, window or grid, grid))
    return OneShotPredictor(bundle, device, dtype, args.predictor, window, args.refine_iterations, args.compile,
                            args.registration_margin, args.registration_union, args.registration_fusion,
                            args.refine_smooth_weight)


class ScanSteps:
    """The one progress stage of ``segment`` and ``evaluate`` over their scans: a scan counts one step, or with a
    per-scan refinement (about a minute on a CPU, which would otherwise pass without a line) its iterations and then
    one for the rest, so the stage moves steadily from the first scan to the last."""

    def __init__(self, progress, name: str, scans: int, predictor: OneShotPredictor):
        self.per_scan = predictor.refine_iterations + 1
        self.stage = progress.stage(name, total=scans * self.per_scan)

    def refining(self, scans_done: int):
        """``on_refine_step`` for ``OneShotPredictor.segment``: the refinement's iterations as steps after the
        ``scans_done`` scans before this one, with the refinement's loss."""
        return lambda iteration, loss: self.stage.update(scans_done * self.per_scan + iteration, loss=loss)

    def scanned(self, scans_done: int) -> None:
        """``scans_done`` scans are finished."""
        self.stage.update(scans_done * self.per_scan)

    def __enter__(self) -> "ScanSteps":
        return self

    def __exit__(self, *exc) -> None:
        self.stage.close()


def _algorithm(predictor: OneShotPredictor) -> Algorithm:
    """How a DICOM SEG names what made it: the model's name, when it was trained, the method and predictor."""
    manifest = predictor.manifest
    return Algorithm(name=str(manifest.get("name") or "OneShotSeg model"), version=str(manifest.get("created", "")),
                     method=f"OneShotSeg reconstruction-guided feature distillation, {predictor.predictor} predictor")


def segment_files(args, outputs: list[Path], progress, companions=None) -> None:
    """Segment ``args.input`` into ``outputs`` (one each; ``jobs.run_segment`` has checked both). The label maps are
    written under temporary names and put in place together at the end, so a job that fails or is cancelled leaves
    none of them. ``companions(staged, label_table)`` (run by the first process only) stages files that belong with
    them, e.g. a BIDS derivative's description and label table, and returns their paths."""
    set_threads(args.threads)  # also for a predictor from the worker's cache
    loaded_as = (args.device, args.precision, args.predictor, tuple(args.sliding_window or ()), args.max_memory,
                 args.refine_iterations, args.compile, args.registration_margin, args.registration_union,
                 args.registration_fusion, args.refine_smooth_weight)
    predictor = cached_model(args, loaded_as, lambda: load_predictor(args), progress)
    progress.device(str(predictor.device), describe_device(predictor.device),
                    str(predictor.dtype).replace("torch.", "") if predictor.dtype else "fp32")
    jobs = shard(list(zip(args.input, outputs)), world_from_env())
    written, seconds = [], []
    with StagedFiles() as staged, ScanSteps(progress, "segment", len(jobs), predictor) as steps:
        for number, (path, output) in enumerate(jobs, 1):
            started = time.perf_counter()
            volume = read_image(path, series_uids(args))
            result = predictor.segment(volume, steps.refining(number - 1))
            labels = result.labels
            labels = keep_largest_components(labels, predictor, args.keep_largest)
            if is_seg_path(output):
                write_seg(output, labels, volume.series, predictor.table, _algorithm(predictor), staged)
            else:
                write_labels(output, labels, volume.affine, predictor.table, staged, LABEL_MAP)
            seconds.append(round(time.perf_counter() - started, 3))
            written.append(str(output))
            progress.log(f"{path} -> {output} in {seconds[-1]:.1f} s")
            steps.scanned(number)
        if companions is not None and world_from_env().is_main:
            written += [str(path) for path in companions(staged, predictor.table)]
    progress.result(outputs=written, seconds=seconds, device=str(predictor.device),
                    peak_memory_mb=round(peak_memory_bytes(predictor.device) / 2**20))
