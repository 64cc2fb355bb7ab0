"""Shared fixtures: where the real data lives (skip when absent), random affines, and a quiet torch."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("ONESHOTSEG_SHARED_DATA", REPO.parent / "shared" / "data"))


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
