"""Shared fixtures: where the real data lives (skip when absent), random affines, and a quiet torch."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("ONESHOTSEG_SHARED_DATA", REPO.parent / "shared" / "data"))

# scripts/test.sh runs two pytest workers on CI's two cores. With torch's default of one thread per core, each
# worker's own torch and every engine child it starts would run two OpenMP threads, four on two cores, and tiny
# kernels then wait on each other's spinning threads. One thread each under xdist; ONESHOTSEG_TEST_THREADS overrides.
# Set before anything imports torch (torch reads OMP_NUM_THREADS once), and inherited by every engine child.
ENGINE_THREADS = os.environ.get("ONESHOTSEG_TEST_THREADS") or ("1" if os.environ.get("PYTEST_XDIST_WORKER") else "2")
os.environ["OMP_NUM_THREADS"] = ENGINE_THREADS


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` beside the checkout; tests that need it skip cleanly when it is absent."""
    if not (SHARED_DATA / "brain").is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} is absent")
    return SHARED_DATA


def random_affine(rng: np.random.Generator, spacing=(0.7, 1.3, 2.5), flip=(False, True, False),
                  degrees: float = 20.0) -> np.ndarray:
    """An oblique, optionally flipped, anisotropic voxel -> RAS matrix."""
    from scipy.spatial.transform import Rotation

    rotation = Rotation.from_rotvec(np.deg2rad(degrees) * rng.normal(size=3) / np.sqrt(3)).as_matrix()
    scale = np.diag([(-s if f else s) for s, f in zip(spacing, flip)])
    affine = np.eye(4)
    affine[:3, :3] = rotation @ scale
    affine[:3, 3] = rng.uniform(-50, 50, size=3)
    return affine
