"""Geometry fidelity of the engine, property-based (hypothesis) over random voxel grids: oblique, flipped,
anisotropic, LPS and RAS NRRD files, NIfTI files with only a qform, only an sform, both, or neither.

- The volume IO reads every file variant as the matrix the file means, and writes label maps and images back on
  exactly that grid.
- A NIfTI file whose qform and sform disagree is refused (3D Slicer and nibabel would place it differently).
- ``distillseg oneshot segment`` (the real CLI, in-process, on ONE tiny model shared by the session) writes every
  output on its input's exact grid, checked in the written header itself (nibabel / pynrrd, not the engine's
  reader), and the same physical scan stored in any voxel order gets the same labels at the same world positions.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np
import nrrd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from distillseg.cli import main
from distillseg.contract.errors import UserError
from distillseg.common.volume_io import read_image, read_labels, write_image, write_labels
from geometry_cases import (LPS_TO_RAS, NRRD_VARIANTS, VARIANTS, affines, reorder, shapes, suffix_of, undo_reorder,
                            write_input)
from conftest import ENGINE_THREADS
from tiny_models import oneshot_fixture

TOLERANCE_MM = 1e-4  # NIfTI stores its matrices in float32
PROPERTY = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
SEGMENT = settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
OUTPUT_SUFFIXES = [".nii.gz", ".nrrd", ".seg.nrrd"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return oneshot_fixture(tmp_path_factory)


@given(shape=shapes(), affine=affines(), variant=st.sampled_from(VARIANTS), seed=st.integers(0, 2**16))
@PROPERTY
def test_every_input_variant_reads_as_the_grid_it_means(shape, affine, variant, seed):
    data = np.random.default_rng(seed).normal(size=shape).astype(np.float32)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"scan{suffix_of(variant)}"
        meant = write_input(path, data, affine, variant)
        volume = read_image(path)
        np.testing.assert_array_equal(volume.array, data)
        np.testing.assert_allclose(volume.affine, meant, atol=TOLERANCE_MM)


@given(shape=shapes(), affine=affines(), suffix=st.sampled_from([".nii.gz", ".nii", ".nrrd", ".seg.nrrd"]),
       seed=st.integers(0, 2**16))
@PROPERTY
def test_label_and_image_round_trips_keep_the_grid(shape, affine, suffix, seed):
    rng = np.random.default_rng(seed)
    labels = rng.choice([0, 1, 7, 300], size=shape)
    image = rng.normal(size=shape).astype(np.float32)
    with tempfile.TemporaryDirectory() as folder:
        back = read_labels(write_labels(Path(folder) / f"labels{suffix}", labels, affine))
        np.testing.assert_array_equal(back.array, labels)
        np.testing.assert_allclose(back.affine, affine, atol=TOLERANCE_MM)
        if not suffix.endswith(".seg.nrrd"):
            again = read_image(write_image(Path(folder) / f"image{suffix}", image, affine))
            np.testing.assert_array_equal(again.array, image)
            np.testing.assert_allclose(again.affine, affine, atol=TOLERANCE_MM)


@given(affine=affines(), shift=st.lists(st.floats(-20, 20), min_size=3, max_size=3).filter(
    lambda v: np.linalg.norm(v) > 0.05), aligned=st.booleans())
@PROPERTY
def test_nifti_whose_qform_and_sform_disagree_is_refused(affine, shift, aligned):
    moved = affine.copy()
    moved[:3, 3] += shift
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "scan.nii.gz"
        image = nib.Nifti1Image(np.zeros((3, 4, 5), np.float32), None)
        image.header.set_qform(affine, code=1)
        image.header.set_sform(moved, code=2 if aligned else 1)
        nib.save(image, str(path))
        with pytest.raises(UserError, match="qform and sform disagree") as info:
            read_image(path)
        assert str(path) in str(info.value)


def _header_grid(path: Path) -> tuple[tuple[int, ...], list[np.ndarray]]:
    """Shape and every voxel -> RAS matrix the written file states, read with nibabel / pynrrd directly."""
    if path.name.endswith(".nii.gz"):
        header = nib.load(str(path)).header
        qform, qcode = header.get_qform(coded=True)
        sform, scode = header.get_sform(coded=True)
        assert qcode > 0 and scode > 0, "outputs state their grid in both NIfTI matrices"
        return tuple(int(s) for s in header.get_data_shape()), [qform, sform]
    header = nrrd.read_header(str(path))
    assert header["space"] == "left-posterior-superior"
    matrix = np.eye(4)
    matrix[:3, :3] = np.asarray(header["space directions"], dtype=float).T
    matrix[:3, 3] = header["space origin"]
    return tuple(int(s) for s in header["sizes"]), [LPS_TO_RAS @ matrix]


def _segment(model: Path, image: Path, output: Path) -> None:
    assert main(["oneshot", "segment", "--model", str(model), "--input", str(image), "--output", str(output),
                 "--device", "cpu", "--threads", ENGINE_THREADS, "--progress", "none"]) == 0


@given(shape=shapes(3, 12), affine=affines(), variant=st.sampled_from(VARIANTS),
       output_suffix=st.sampled_from(OUTPUT_SUFFIXES))
@SEGMENT
def test_segment_writes_on_the_inputs_exact_grid(tiny, shape, affine, variant, output_suffix):
    scan = read_image(tiny.case["scans"][0]).array
    data = np.ascontiguousarray(scan[tuple(slice(0, s) for s in shape)])
    with tempfile.TemporaryDirectory() as folder:
        image = Path(folder) / f"scan{suffix_of(variant)}"
        meant = write_input(image, data, affine, variant)
        output = Path(folder) / f"labels{output_suffix}"
        _segment(tiny.model, image, output)
        written_shape, matrices = _header_grid(output)
        assert written_shape == shape
        for matrix in matrices:
            np.testing.assert_allclose(matrix, meant, atol=TOLERANCE_MM)


@pytest.fixture(scope="module")
def reference(tiny, tmp_path_factory):
    """The shared scan (on the atlas's grid) and its labels as the tiny model segments it."""
    output = tmp_path_factory.mktemp("reference") / "labels.nii.gz"
    _segment(tiny.model, tiny.case["scans"][0], output)
    labels = read_labels(output).array
    assert len(np.unique(labels)) > 1, "the reference must hold structures for the comparison to mean anything"
    return read_image(tiny.case["scans"][0]), labels


@given(permutation=st.permutations([0, 1, 2]), flips=st.lists(st.booleans(), min_size=3, max_size=3),
       variant=st.sampled_from(["nifti-qform", "nifti-sform", "nifti-both"] + NRRD_VARIANTS))
@SEGMENT
def test_same_scan_in_any_voxel_order_gets_the_same_labels(tiny, reference, permutation, flips, variant):
    scan, expected = reference
    data, affine = reorder(scan.array, scan.affine, permutation, flips)
    with tempfile.TemporaryDirectory() as folder:
        image = Path(folder) / f"reordered{suffix_of(variant)}"
        write_input(image, data, affine, variant)
        output = Path(folder) / "labels.nrrd"
        _segment(tiny.model, image, output)
        labels = read_labels(output)
        np.testing.assert_allclose(labels.affine, affine, atol=TOLERANCE_MM)
        back = undo_reorder(labels.array, permutation, flips)
        # The same world points are sampled; only float rounding at a class boundary may differ.
        assert np.mean(back == expected) > 0.995
