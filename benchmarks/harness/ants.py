"""ANTs label propagation, the classic peer of one-shot segmentation: register the atlas image to a scan with
``antspyx`` and carry the atlas labels over with the found transform.

Run as its own process (one per registration, so its time and peak memory are measured like ours)::

    .venv/bin/python -m benchmarks.harness.ants --fixed SCAN --moving ATLAS --labels ATLAS_LABELS \
        --out LABELS.nii.gz --transform SyN --spacing 2 --reg-iterations 40 20 --threads 2

Both images are resampled to ``--spacing`` mm (linear) for the registration; the labels are then warped
(``genericLabel`` interpolation) onto the scan's own full-resolution grid, so they are scored on that grid. The last
stdout line is a JSON ``result`` event with the registration's own seconds. ``--threads`` sets
``ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS`` before ANTs is imported.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path

from distillseg.contract.events import RESULT, event_line

from .run import run_measured

WORKER = __spec__.name  # this module, whether imported or run: the child runs ``python -m WORKER``


def propagate(args) -> dict:
    """Register, warp the labels, write them; the figures of the ``result`` event."""
    os.environ["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"] = str(args.threads)
    import ants
    import nibabel as nib
    import numpy as np

    started = time.perf_counter()
    fixed_full = ants.image_read(args.fixed)
    moving_full = ants.image_read(args.moving)
    labels = ants.image_read(args.labels)
    if args.spacing:
        fixed = ants.resample_image(fixed_full, [args.spacing] * 3, use_voxels=False, interp_type=0)
        moving = ants.resample_image(moving_full, [args.spacing] * 3, use_voxels=False, interp_type=0)
    else:
        fixed, moving = fixed_full, moving_full
    options = {"reg_iterations": tuple(args.reg_iterations)} if args.reg_iterations else {}
    if args.aff_iterations:
        options["aff_iterations"] = tuple(args.aff_iterations)
    for name, value in json.loads(args.registration_options or "{}").items():
        options[name] = tuple(value) if isinstance(value, list) else value
    # antspyx passes a seed to antsRegistration (--random-seed, for the affine stage's random sampling) only
    # through this module setting; its public switch (set_ants_deterministic) would also force one thread.
    ants.config._random_seed = args.seed
    registration_started = time.perf_counter()
    registration = ants.registration(fixed=fixed, moving=moving, type_of_transform=args.transform, **options)
    registration_seconds = time.perf_counter() - registration_started
    warped = ants.apply_transforms(fixed=fixed_full, moving=labels, transformlist=registration["fwdtransforms"],
                                   interpolator="genericLabel")
    array = np.rint(warped.numpy()).astype(np.int16)
    reference = nib.load(args.fixed)
    if array.shape != reference.shape[:3]:
        raise RuntimeError(f"ANTs returned labels of shape {array.shape}, the scan is {reference.shape}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(array, reference.affine), args.out)
    return {"registration_seconds": round(registration_seconds, 2),
            "in_process_seconds": round(time.perf_counter() - started, 2),
            "registration_shape": list(fixed.shape), "ants_version": ants.__version__}


def settings_key(settings: dict, files: list[str]) -> str:
    """What a cached result must agree with: the settings and the inputs' (path, size, mtime)."""
    stats = [(str(Path(f).resolve()), Path(f).stat().st_size, int(Path(f).stat().st_mtime)) for f in files]
    return hashlib.sha256(json.dumps([settings, stats], sort_keys=True).encode()).hexdigest()[:16]


def run_ants(out_dir: Path, fixed: Path, moving: Path, labels: Path, transform: str, spacing: float | None,
             reg_iterations: tuple[int, ...] | None, threads: int, reuse: bool, seed: int = 1,
             aff_iterations: tuple[int, ...] | None = None, registration_options: dict | None = None) -> dict:
    """Propagate ``labels`` from ``moving`` to ``fixed`` in a measured child process, or reuse the cached result
    in ``out_dir`` (``reuse``) when it was made with the same settings and inputs. ``registration_options``: more
    ``ants.registration`` arguments, e.g. ``{"initial_transform": "identity"}`` (start from the images' own
    placement instead of matching their centres of mass) or ``{"aff_shrink_factors": [4, 2, 1]}``.

    Returns ``{"labels": path, "seconds": whole process, "peak_rss_mb", "registration_seconds", ...}``."""
    settings = {"transform": transform, "spacing": spacing, "reg_iterations": list(reg_iterations or []),
                "aff_iterations": list(aff_iterations or []), "threads": threads, "seed": seed}
    if registration_options:  # only when set: the settings, so the cache keys, of every other run stay as they were
        settings["registration_options"] = registration_options
    key = settings_key(settings, [str(fixed), str(moving), str(labels)])
    cache = out_dir / "result.json"
    if reuse and cache.is_file():
        cached = json.loads(cache.read_text())
        if cached.get("key") == key and Path(cached["labels"]).is_file():
            return {**cached, "reused": True}
    out_dir.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", WORKER, "--fixed", fixed, "--moving", moving, "--labels", labels,
               "--out", out_dir / "labels.nii.gz", "--transform", transform, "--threads", threads, "--seed", seed]
    if spacing:
        command += ["--spacing", spacing]
    if reg_iterations:
        command += ["--reg-iterations", *reg_iterations]
    if aff_iterations:
        command += ["--aff-iterations", *aff_iterations]
    if registration_options:
        command += ["--registration-options", json.dumps(registration_options, sort_keys=True)]
    measured = run_measured(command, env={"ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS": str(threads)})
    result = {"key": key, "settings": settings, "labels": str(out_dir / "labels.nii.gz"), **measured.summary(),
              **measured.result}
    cache.write_text(json.dumps(result, indent=1) + "\n")
    return {**result, "reused": False}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fixed", required=True, help="the scan to segment")
    parser.add_argument("--moving", required=True, help="the atlas image")
    parser.add_argument("--labels", required=True, help="the atlas labels (on the atlas image's grid)")
    parser.add_argument("--out", required=True, help="label map to write, on the scan's grid")
    parser.add_argument("--transform", default="SyN", help="ANTs type_of_transform (Affine, SyN, ...)")
    parser.add_argument("--spacing", type=float, default=None, help="registration resolution in mm (default: native)")
    parser.add_argument("--reg-iterations", type=int, nargs="+", default=None,
                        help="SyN iterations per level, coarse to fine (default: ANTs's (40, 20, 0))")
    parser.add_argument("--aff-iterations", type=int, nargs="+", default=None,
                        help="affine iterations per level (default: ANTs's)")
    parser.add_argument("--registration-options", default=None,
                        help='more ants.registration arguments as JSON, e.g. \'{"initial_transform": "identity"}\'')
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    print(event_line(RESULT, **propagate(parser.parse_args())), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
