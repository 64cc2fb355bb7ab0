"""``segment/evaluate --keep-largest [all|atlas]``: the largest connected component of every structure, or only of
the structures that are one piece in the atlas (a structure in several pieces there, like the choroid plexus,
keeps all its pieces: its largest piece need not be the right one)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from distillseg.common.bundle import load_bundle
from distillseg.common.volume_io import write_image, write_labels
from distillseg.oneshot.predict import OneShotPredictor
from distillseg.oneshot.segment import keep_largest_components
from tiny_models import ONESHOT_TINY, checked, distillseg

ONE_PIECE, TWO_PIECES = 3, 7


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("components")
    rng = np.random.default_rng(0)
    image = rng.random((24, 24, 24)).astype(np.float32)
    labels = np.zeros((24, 24, 24), np.int16)
    labels[4:12, 4:12, 4:12] = ONE_PIECE
    labels[14:18, 4:8, 4:8] = TWO_PIECES          # two blocks with 6 voxels between them: two pieces
    labels[14:18, 14:18, 14:18] = TWO_PIECES
    labels[12, 12, 12] = ONE_PIECE                  # touches the big block corner to corner: still one piece
    affine = np.diag([1.0, 1.0, 1.0, 1.0])
    atlas = write_image(folder / "atlas.nii.gz", image, affine)
    atlas_labels = write_labels(folder / "atlas_labels.nii.gz", labels, affine)
    scan = write_image(folder / "scan.nii.gz", np.roll(image, 1, axis=0), affine)
    out = folder / "model"
    checked(distillseg("oneshot", "train", "--atlas", atlas, "--atlas-labels", atlas_labels, "--unlabeled", scan,
                       "--out", out, *ONESHOT_TINY, "--progress", "none"))
    return out, scan


def test_only_structures_in_one_piece_in_the_atlas_lose_their_islands(model):
    predictor = OneShotPredictor(load_bundle(model[0], "oneshot"), torch.device("cpu"), None)
    assert predictor.one_piece_values == [ONE_PIECE]
    labels = np.zeros((20, 20, 20), np.int16)
    labels[0:5, 0:5, 0:5] = ONE_PIECE
    labels[15:17, 15:17, 15:17] = ONE_PIECE        # a stray island of a one-piece structure
    labels[10:13, 0:3, 0:3] = TWO_PIECES
    labels[0:2, 15:17, 0:2] = TWO_PIECES           # the smaller piece of a fragmented structure
    untouched = keep_largest_components(labels, predictor, None)
    assert untouched is labels
    by_atlas = keep_largest_components(labels, predictor, "atlas")
    assert not np.any(by_atlas[15:17, 15:17, 15:17]) and np.all(by_atlas[0:5, 0:5, 0:5] == ONE_PIECE)
    assert np.array_equal(by_atlas == TWO_PIECES, labels == TWO_PIECES)
    everything = keep_largest_components(labels, predictor, "all")
    assert not np.any(everything[0:2, 15:17, 0:2]) and np.all(everything[10:13, 0:3, 0:3] == TWO_PIECES)
    assert not np.any(everything[15:17, 15:17, 15:17])


def test_the_cli_takes_the_flag_alone_or_with_a_rule(model, tmp_path):
    out, scan = model
    for extra in (["--keep-largest"], ["--keep-largest", "atlas"]):
        result = tmp_path / f"{len(extra)}.nii.gz"
        checked(distillseg("oneshot", "segment", "--model", out, "--input", scan, "--output", result,
                           "--device", "cpu", "--progress", "none", *extra))
        assert result.is_file()
    refused = distillseg("oneshot", "segment", "--model", out, "--input", scan, "--output", tmp_path / "x.nii.gz",
                         "--keep-largest", "most")
    assert refused.returncode == 2 and "invalid choice: 'most'" in refused.stderr
    assert not (tmp_path / "x.nii.gz").exists()
