"""DICOM in and DICOM SEG out on real files, through the real CLI: the shared brain written as an OBLIQUE,
anisotropic DICOM series (rotated 17° and -19° about two axes, slices in shuffled files, intensities through
RescaleSlope/Intercept) is segmented with ``--output X.dcm``; the SEG, read back with highdicom, references the
source series, holds the model's segment names, colours and codes (the structure without terminology gets the
documented generic code), and lands voxel-exactly on the input grid: its labels equal those of the same volume
segmented from a NRRD file, placed through the SEG's own geometry. A folder of two series is read with
``--series-uid``. The refusals of broken series and of impossible SEG outputs are rows of the bad-input matrices
(``test_bad_input_matrix.py``, ``test_bad_output_matrix.py``), which check their one sentence and that nothing is
written.
"""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from bad_input_env import copy_model
from dicom_files import LPS_TO_RAS, modality_values, rotation, write_series
from distillseg.common.volume_io import read_image, read_labels, write_image
from tiny_models import checked, distillseg, oneshot_fixture

hd = pytest.importorskip("highdicom")

LIVER = ("Segmentation category and type - 3D Slicer General Anatomy list~SCT^123037004^Anatomical Structure"
         "~SCT^10200004^Liver~^^~Anatomic codes - DICOM master list~^^~^^")
SPACING = (1.9, 2.1, 2.4)  # anisotropic: a reader that swaps DICOM's row and column spacing lands off the grid


def _oblique_brain_grid(shape, centre) -> np.ndarray:
    """Voxel -> RAS: ``SPACING``, the grid's centre on ``centre`` (mm), rotated 17° and -19° about it."""
    base = np.diag([*SPACING, 1.0])
    base[:3, 3] = np.asarray(centre) - base[:3, :3] @ ((np.asarray(shape) - 1) / 2)
    about = np.eye(4)
    about[:3, 3] = centre
    return about @ rotation(17, -19) @ np.linalg.inv(about) @ base


@pytest.fixture(scope="module")
def brain(tmp_path_factory, shared_data):
    """The brain at every second voxel (80x96x112) as a DICOM series and as NRRD on the same grid, centred on the
    tiny model's atlas so its structures land inside; and the tiny model with a terminology for label 1."""
    one = oneshot_fixture(tmp_path_factory)
    folder = tmp_path_factory.mktemp("dicom brain")
    array = np.asarray(nib.load(shared_data / "brain" / "oasis_example_aligned_norm.nii.gz").dataobj,
                       dtype=np.float32)[::2, ::2, ::2]
    atlas = read_image(one.case["atlas"])
    centre = (atlas.affine @ [*((np.asarray(atlas.shape) - 1) / 2), 1.0])[:3]
    affine = _oblique_brain_grid(array.shape, centre)
    write_series(folder / "series ü", array, affine, description="T1 oblique")
    # NRRD keeps the matrix in full precision (a NIfTI header stores it as float32, 1e-5 mm off the DICOM grid).
    reference = write_image(folder / "brain.nrrd", modality_values(array), affine)

    def with_liver(manifest):
        manifest["labels"][0]["terminology"] = LIVER

    model = copy_model(one.model, folder / "model with terminology", with_liver)
    return folder / "series ü", reference, affine, model


def _world_to_voxels(affine: np.ndarray, world_ras: np.ndarray) -> np.ndarray:
    return (np.linalg.inv(affine) @ np.vstack([world_ras, np.ones(world_ras.shape[1])]))[:3]


def test_oblique_series_to_seg_lands_on_the_input_grid(brain, tmp_path):
    series, reference, affine, model = brain
    volume = read_image(series)
    assert volume.shape == (80, 96, 112) and np.abs(volume.affine - affine).max() < 1e-6
    assert np.array_equal(volume.array, read_image(reference).array)  # rescale slope/intercept applied
    out, expected_path = tmp_path / "brain seg.dcm", tmp_path / "expected.nii.gz"
    result = checked(distillseg("oneshot", "segment", "--model", model, "--input", series, "--output", out,
                                "--device", "cpu", "--progress", "none", "--json"))
    assert json.loads(result.stdout)["outputs"] == [str(out)]
    checked(distillseg("oneshot", "segment", "--model", model, "--input", reference, "--output", expected_path,
                       "--device", "cpu", "--progress", "none"))
    expected = read_labels(expected_path).array
    manifest = json.loads((model / "manifest.json").read_text(encoding="utf-8"))
    values = [entry["value"] for entry in manifest["labels"]]
    assert set(np.unique(expected)) - {0}, "the model found nothing on the brain: the test would prove little"

    seg = hd.seg.segread(out)
    assert seg.SegmentationType == "BINARY" and seg.Modality == "SEG"
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == volume.series.uid
    assert seg.StudyInstanceUID == volume.series.headers[0].StudyInstanceUID
    segments = list(seg.SegmentSequence)
    assert [s.SegmentLabel for s in segments] == [entry["name"] for entry in manifest["labels"]]
    codes = [(s.SegmentedPropertyCategoryCodeSequence[0].CodeValue, s.SegmentedPropertyTypeCodeSequence[0].CodeValue)
             for s in segments]
    assert codes[0] == ("123037004", "10200004") and set(codes[1:]) == {("85756007", "85756007")}
    for segment, entry in zip(segments, manifest["labels"]):
        assert segment.SegmentAlgorithmType == "AUTOMATIC"
        assert segment.SegmentAlgorithmName == manifest["name"]
        rgb = hd.color.CIELabColor.from_dicom_value(tuple(segment.RecommendedDisplayCIELabValue)).to_rgb()
        assert np.abs(np.subtract(rgb, entry["color"])).max() <= 1

    # Frames by the source slices they reference: (K, rows, columns) segment numbers -> (I, J, K) label values.
    numbers = seg.get_pixels_by_source_instance([h.SOPInstanceUID for h in volume.series.headers],
                                                combine_segments=True, assert_missing_frames_are_empty=True)
    lookup = np.array([0, *values])
    assert np.array_equal(lookup[numbers.transpose(2, 1, 0)], expected)
    # And by the SEG's own geometry: every voxel of its volume (slices, rows, columns; LPS) lies on a voxel of the
    # input grid, to a micrometre, and carries that voxel's label.
    placed = seg.get_volume(combine_segments=True)
    index = np.indices(placed.spatial_shape).reshape(3, -1)
    world = (LPS_TO_RAS @ placed.affine @ np.vstack([index, np.ones(index.shape[1])]))[:3]
    ijk = _world_to_voxels(affine, world)
    assert np.abs(ijk - np.rint(ijk)).max() * min(SPACING) < 1e-3
    i, j, k = np.rint(ijk).astype(int)
    assert np.array_equal(lookup[placed.array.reshape(-1)], expected[i, j, k])


def test_series_uid_picks_one_series_of_a_folder(tmp_path_factory, tmp_path):
    one = oneshot_fixture(tmp_path_factory)
    scan = read_image(one.case["scans"][0])
    folder = tmp_path / "export"
    write_series(folder / "a", scan.array, scan.affine, description="first", series_uid="1.2.826.0.1.3680043.10.1.1")
    write_series(folder / "b", scan.array[::-1], rotation(10, 0) @ scan.affine, description="second",
                 series_uid="1.2.826.0.1.3680043.10.1.2", seed=1)
    out = tmp_path / "seg.nii.gz"
    refused = distillseg("oneshot", "segment", "--model", one.model, "--input", folder, "--output", out,
                         "--device", "cpu", "--progress", "none")
    assert refused.returncode == 2 and not out.exists()
    assert "1.2.826.0.1.3680043.10.1.1 ('first', 24 slices), 1.2.826.0.1.3680043.10.1.2 ('second', 24 slices)" \
        in refused.stderr.splitlines()[-1]
    checked(distillseg("oneshot", "segment", "--model", one.model, "--input", folder, "--series-uid",
                       "1.2.826.0.1.3680043.10.1.2", "--output", out, "--device", "cpu", "--progress", "none"))
    assert np.allclose(read_labels(out).affine, read_image(folder / "b").affine, atol=1e-5)  # the second one
