"""``segment/evaluate --keep-largest [all|atlas]``: the largest connected component of every structure, or only of
the structures that are one piece in the atlas (a structure in several pieces there, like the choroid plexus,
keeps all its pieces: its largest piece need not be the right one); and ``--registration-margin MM``: each of the
student's structures kept within MM millimetres of where the augmenter's warp of the atlas puts it, farther voxels
going to the next most likely class; ``--registration-union``: a structure in several pieces in the atlas also takes
the voxels the augmenter's warp of the atlas gives it; and ``--registration-fusion W``: the student's probabilities
averaged with the per-scan refined warp of the atlas labels."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from distillseg.common.bundle import load_bundle
from distillseg.common.volume_io import read_labels, write_image, write_labels
from distillseg.oneshot.predict import OneShotPredictor
from distillseg.oneshot.registration_bound import bound_to_registration, unite_with_registration
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


def _scores(shape=(16, 16, 16), classes=3) -> torch.Tensor:
    scores = torch.zeros((classes, *shape))
    scores[0] = 1.0
    return scores


def test_a_stray_island_goes_to_the_next_class_and_the_near_part_stays():
    warped, scores = _scores(), _scores()
    warped[1, 2:5, 2:5, 2:5] = 2.0                  # registration puts structure 1 in a corner
    scores[1, 2:6, 2:6, 2:6] = 2.0                  # the student: one voxel layer more, near it ...
    scores[1, 11:14, 11:14, 11:14] = 2.0            # ... and an island 14 mm away (2 mm voxels)
    scores[2, 11:14, 11:14, 11:14] = 1.5            # structure 2 is the island's runner-up
    bounded = bound_to_registration(scores, warped, np.array([2.0, 2.0, 2.0]), 4.0).argmax(0)
    assert torch.all(bounded[11:14, 11:14, 11:14] == 2)
    # The far corner of the near block is sqrt(3) * 2 mm from the structure: inside a 4 mm margin.
    assert torch.all(bounded[2:6, 2:6, 2:6] == 1)
    tight = bound_to_registration(scores, warped, np.array([2.0, 2.0, 2.0]), 0.0).argmax(0)
    assert torch.equal(tight == 1, warped.argmax(0) == 1)


def test_millimetres_follow_the_grid_spacing_per_axis():
    warped, scores = _scores(), _scores()
    warped[1, 0, :, :] = 2.0
    scores[1, 0:4, 0:4, 0:4] = 2.0                  # 3 voxels beyond the structure along the first axis
    for spacing, kept in (([1.0, 9.0, 9.0], 4), ([2.0, 1.0, 1.0], 2), ([4.0, 1.0, 1.0], 1)):
        labels = bound_to_registration(scores, warped, np.array(spacing), 3.0).argmax(0)
        assert int((labels[:, 0, 0] == 1).sum()) == kept, spacing


def test_background_and_a_structure_registration_never_places_are_not_bounded():
    warped, scores = _scores(), _scores()
    scores[2, 8, 8, 8] = 5.0                        # structure 2: absent from the warped atlas
    bounded = bound_to_registration(scores, warped, np.array([1.0, 1.0, 1.0]), 1.0)
    assert torch.equal(bounded, scores) and bounded is not scores


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**31 - 1), st.floats(0, 20))
def test_bounding_only_zeroes_scores_and_moves_only_voxels_it_took_a_class_from(seed, margin):
    generator = torch.Generator().manual_seed(seed)
    scores = torch.softmax(torch.randn((4, 10, 9, 8), generator=generator), dim=0)
    warped = torch.softmax(3 * torch.randn((4, 10, 9, 8), generator=generator), dim=0)
    spacing = np.array([1.5, 1.0, 2.0])
    bounded = bound_to_registration(scores, warped, spacing, margin)
    assert torch.equal(bounded[0], scores[0])
    assert torch.all((bounded == scores) | (bounded == 0))
    before, after = scores.argmax(0), bounded.argmax(0)
    kept = torch.gather(bounded, 0, before[None])[0] > 0
    assert torch.equal(after[kept], before[kept])
    # Every voxel a structure holds afterwards lies within the margin of its warped region (brute force).
    regions = warped.argmax(0)
    points = torch.stack(torch.meshgrid(*[torch.arange(n) * s for n, s in zip(regions.shape, spacing)],
                                        indexing="ij"), dim=-1).double()
    for c in range(1, 4):
        if (regions == c).any() and (after == c).any():
            nearest = torch.cdist(points[after == c], points[regions == c]).min(dim=1).values
            assert float(nearest.max()) <= margin + 1e-9


def test_the_predictor_bounds_the_student_by_its_own_augmenter(model):
    bundle = load_bundle(model[0], "oneshot")
    predictor = OneShotPredictor(bundle, torch.device("cpu"), None, "student", registration_margin=0.0)
    image = predictor.atlas_image
    warped = predictor.warped_atlas(image)
    labels = predictor.scores(image).argmax(0)
    student = predictor.student_scores(image).argmax(0)
    for c in range(1, len(predictor.values)):
        # At 0 mm a structure can only keep voxels that are its own in both the student and the warped atlas.
        assert torch.equal(labels == c, (student == c) & (warped.argmax(0) == c))
    assert OneShotPredictor(bundle, torch.device("cpu"), None, "affine", registration_margin=2.0).augmenter is None
    # The margin cuts at the warp's edge: it keeps the refinement it was measured with, with or without the union.
    trained = bundle.manifest["training"]["options"]["augmenter"]["refine_iterations"]
    both = OneShotPredictor(bundle, torch.device("cpu"), None, "student", registration_margin=0.0,
                            registration_union=True)
    assert predictor.refine_iterations == both.refine_iterations == trained > 0


def test_the_cli_takes_a_margin_and_refuses_a_negative_one(model, tmp_path):
    out, scan = model
    result = tmp_path / "bounded.nii.gz"
    checked(distillseg("oneshot", "segment", "--model", out, "--input", scan, "--output", result, "--device", "cpu",
                       "--progress", "none", "--registration-margin", "3"))
    assert read_labels(result).array.shape == (24, 24, 24)
    refused = distillseg("oneshot", "segment", "--model", out, "--input", scan, "--output", tmp_path / "x.nii.gz",
                         "--registration-margin", "-1")
    assert refused.returncode == 2 and "--registration-margin" in refused.stderr
    assert not (tmp_path / "x.nii.gz").exists()


def test_a_fragmented_structure_gets_the_union_of_student_and_registration():
    warped, scores = _scores(), _scores()
    warped[1, 2:10, 2:4, 2:4] = 2.0                 # registration: structure 1 reaches along the first axis ...
    scores[1, 2:5, 2:4, 2:4] = 2.0                  # ... the student's falls short of it
    scores[1, 12, 12, 12] = 2.0                     # and has a piece the registration has not
    scores[2, 7:9, 2:4, 2:4] = 3.0                  # structure 2 claims voxels registration gives structure 1
    scores[2, 12:14, 2:4, 2:4] = 3.0
    united = unite_with_registration(scores, warped, [1])
    assert united is not scores and torch.equal(scores[1, 12, 12, 12], torch.tensor(2.0))
    labels, student, registered = united.argmax(0), scores.argmax(0), warped.argmax(0)
    assert torch.equal(labels == 1, (registered == 1) | (student == 1))
    assert torch.equal(labels == 2, (student == 2) & (registered != 1))
    assert torch.equal(unite_with_registration(scores, warped, []), scores)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**31 - 1), st.sets(st.integers(1, 3)))
def test_outside_the_united_regions_the_student_speaks_and_inside_them_the_registration(seed, classes):
    generator = torch.Generator().manual_seed(seed)
    scores = torch.softmax(torch.randn((4, 10, 9, 8), generator=generator), dim=0)
    warped = torch.softmax(3 * torch.randn((4, 10, 9, 8), generator=generator), dim=0)
    united = unite_with_registration(scores, warped, sorted(classes))
    registered = warped.argmax(0)
    region = torch.isin(registered, torch.tensor(sorted(classes), dtype=torch.int64))
    assert torch.equal(united[:, ~region], scores[:, ~region])
    assert torch.equal(united.argmax(0), torch.where(region, registered, scores.argmax(0)))
    assert torch.allclose(united.sum(0), torch.ones(()))  # still a probability at every voxel


def test_the_predictor_unites_only_structures_in_pieces_in_the_atlas_with_its_own_augmenter(model, tmp_path):
    out, scan = model
    predictor = OneShotPredictor(load_bundle(out, "oneshot"), torch.device("cpu"), None, "student",
                                 registration_union=True)
    image = predictor.atlas_image
    labels = predictor.scores(image).argmax(0)
    student, registered = predictor.student_scores(image).argmax(0), predictor.warped_atlas(image).argmax(0)
    pieces = predictor.values.tolist().index(TWO_PIECES)
    # The warp gives the fragmented structure voxels the student does not: the union has something to add.
    assert bool(((registered == pieces) & (student != pieces)).any())
    assert torch.equal(labels, torch.where(registered == pieces, registered, student))
    augmenter = OneShotPredictor(load_bundle(out, "oneshot"), torch.device("cpu"), None, "augmenter",
                                 registration_union=True)
    assert augmenter.registration_union is False
    # The student's check uses the network's one-pass warp unless told otherwise; the augmenter predictor refines
    # as in training.
    trained = load_bundle(out, "oneshot").manifest["training"]["options"]["augmenter"]["refine_iterations"]
    assert (predictor.refine_iterations, augmenter.refine_iterations) == (0, trained) and trained > 0
    result = tmp_path / "united.nii.gz"
    plain = tmp_path / "plain.nii.gz"
    # the union is segment's default for the student alone (--registration-fusion 0)
    for output, extra in ((result, ["--registration-fusion", "0"]),
                          (plain, ["--registration-fusion", "0", "--no-registration-union"])):
        checked(distillseg("oneshot", "segment", "--model", out, "--input", scan, "--output", output, "--device",
                           "cpu", "--progress", "none", *extra))
    united, alone = read_labels(result).array, read_labels(plain).array
    # The CLI passes the option on: only the fragmented structure gains voxels, the one-piece one never does.
    assert united.shape == (24, 24, 24) and np.sum(united == TWO_PIECES) > np.sum(alone == TWO_PIECES)
    assert not np.any((united == ONE_PIECE) & (alone != ONE_PIECE))


def test_the_fusion_averages_the_student_with_the_refined_registration_and_replaces_the_union(model):
    out, _ = model
    bundle = load_bundle(out, "oneshot")
    fused = OneShotPredictor(bundle, torch.device("cpu"), None, "student", registration_union=True,
                             registration_fusion=0.3)
    trained = bundle.manifest["training"]["options"]["augmenter"]["refine_iterations"]
    # its labels are the warp's, so the warp is refined as the augmenter predictor's; the union is off beside it
    assert fused.refine_iterations == trained > 0 and fused.registration_union is False
    image = fused.atlas_image
    torch.manual_seed(0)
    expected = 0.7 * fused.student_scores(image) + 0.3 * fused.warped_atlas(image)
    assert torch.allclose(fused.scores(image), expected, atol=1e-6)
    assert torch.allclose(fused.scores(image).sum(0), torch.ones(()), atol=1e-5)  # still a probability
    # other predictors ignore it, as they ignore the union
    assert OneShotPredictor(bundle, torch.device("cpu"), None, "affine", registration_fusion=0.5).augmenter is None
