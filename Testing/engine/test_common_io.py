"""Geometry and label round trips of the volume IO, and its one-sentence errors."""

from __future__ import annotations

import gzip

import nibabel as nib
import numpy as np
import nrrd
import pytest

from conftest import random_affine
from distillseg.contract.errors import UserError
from distillseg.contract.labels import LabelEntry, LabelTable
from distillseg.common.volume_io import read_image, read_labels, write_image, write_labels


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii", ".nrrd", ".seg.nrrd"])
@pytest.mark.parametrize("flip", [(False, False, False), (True, False, True)])
def test_label_round_trip_keeps_grid_and_values(tmp_path, suffix, flip):
    rng = np.random.default_rng(1)
    affine = random_affine(rng, spacing=(0.7, 1.3, 2.5), flip=flip)
    labels = rng.choice([0, 1, 2, 17], size=(7, 5, 6))
    table = LabelTable([LabelEntry(1, "liver", (200, 100, 50), "SCT^123^Liver"), LabelEntry(2, "spleen", (10, 20, 30)),
                        LabelEntry(17, "hippocampus", (1, 2, 3))])
    path = write_labels(tmp_path / f"out{suffix}", labels, affine, table)
    back = read_labels(path)
    assert back.shape == labels.shape
    np.testing.assert_array_equal(back.array, labels)
    np.testing.assert_allclose(back.affine, affine, atol=1e-5)
    if suffix == ".seg.nrrd":
        assert back.labels.names() == {1: "liver", 2: "spleen", 17: "hippocampus"}
        assert back.labels.entries[0].color == (200, 100, 50)
        assert back.labels.entries[0].terminology == "SCT^123^Liver"


def test_nrrd_lps_file_matches_nifti_ras(tmp_path):
    """An LPS NRRD written by another tool gives the same RAS matrix as the equivalent NIfTI."""
    rng = np.random.default_rng(2)
    affine = random_affine(rng)
    data = rng.normal(size=(4, 5, 6)).astype(np.float32)
    lps = np.diag([-1, -1, 1, 1]) @ affine
    nrrd.write(str(tmp_path / "a.nrrd"), data, {"space": "LPS", "space directions": lps[:3, :3].T,
                                                 "space origin": lps[:3, 3]})
    nib.save(nib.Nifti1Image(data, affine), str(tmp_path / "a.nii.gz"))
    a, b = read_image(tmp_path / "a.nrrd"), read_image(tmp_path / "a.nii.gz")
    np.testing.assert_allclose(a.affine, b.affine, atol=1e-5)
    np.testing.assert_array_equal(a.array, b.array)


def test_image_round_trip(tmp_path):
    rng = np.random.default_rng(3)
    affine = random_affine(rng, flip=(True, True, False))
    data = rng.normal(size=(6, 7, 8)).astype(np.float32)
    for suffix in (".nii.gz", ".nrrd"):
        back = read_image(write_image(tmp_path / f"img{suffix}", data, affine))
        np.testing.assert_array_equal(back.array, data)
        np.testing.assert_allclose(back.affine, affine, atol=1e-5)


def _expect_error(path, reader, fragment):
    with pytest.raises(UserError) as info:
        reader(path)
    message = str(info.value)
    assert str(path) in message and fragment in message, message


def test_bad_inputs_give_one_sentence(tmp_path):
    affine = np.eye(4)
    nan = np.ones((4, 4, 4), np.float32)
    nan[1, 1, 1] = np.nan
    nib.save(nib.Nifti1Image(nan, affine), str(tmp_path / "nan.nii.gz"))
    _expect_error(tmp_path / "nan.nii.gz", read_image, "NaN")
    nib.save(nib.Nifti1Image(np.ones((4, 4), np.float32), affine), str(tmp_path / "flat.nii.gz"))
    _expect_error(tmp_path / "flat.nii.gz", read_image, "3D")
    nib.save(nib.Nifti1Image(np.ones((4, 4, 4, 2), np.float32), affine), str(tmp_path / "4d.nii.gz"))
    _expect_error(tmp_path / "4d.nii.gz", read_image, "4-D")
    nib.save(nib.Nifti1Image(np.full((4, 4, 4), 1.5, np.float32), affine), str(tmp_path / "frac.nii.gz"))
    _expect_error(tmp_path / "frac.nii.gz", read_labels, "non-integer")
    (tmp_path / "empty.nii.gz").write_bytes(b"")
    _expect_error(tmp_path / "empty.nii.gz", read_image, "empty")
    (tmp_path / "junk.nii.gz").write_bytes(gzip.compress(b"not an image at all" * 10))
    _expect_error(tmp_path / "junk.nii.gz", read_image, "cannot be read")
    good = tmp_path / "good.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((8, 8, 8), np.float32), affine), str(good))
    (tmp_path / "truncated.nii.gz").write_bytes(good.read_bytes()[:60])
    _expect_error(tmp_path / "truncated.nii.gz", read_image, "cannot be read")
    _expect_error(tmp_path / "missing.nii.gz", read_image, "does not exist")
    _expect_error(tmp_path / "scan.png", read_image, "unsupported file type")
