"""The per-structure metrics every evaluation reports (``distillseg.common.metrics``): Dice and HD95 by hand, and the
two one-way 95th percentiles that tell a stray piece (over-segmentation) from a missed part (under-segmentation)."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from distillseg.common.metrics import structure_scores


def _cube(shape=(24, 24, 24), lo=4, hi=12) -> np.ndarray:
    volume = np.zeros(shape, dtype=np.int64)
    volume[lo:hi, lo:hi, lo:hi] = 1
    return volume


def test_dice_and_hd95_of_a_shifted_cube_by_hand():
    truth = _cube()
    pred = np.roll(truth, 2, axis=0)  # 8 voxel slabs, 6 of them shared; every surface voxel 2 voxels off at most
    scores = structure_scores(pred, truth, [1], spacing=(1.5, 1.0, 1.0), directed=True)[1]
    assert math.isclose(scores["dice"], 6 / 8, rel_tol=1e-6)
    assert math.isclose(scores["hd95"], 3.0, rel_tol=1e-6)  # 2 voxels along an axis of 1.5 mm
    assert math.isclose(scores["hd95_pred_to_truth"], 3.0, rel_tol=1e-6)
    assert math.isclose(scores["hd95_truth_to_pred"], 3.0, rel_tol=1e-6)


def test_a_missed_part_raises_only_the_truth_to_prediction_distance():
    truth = np.zeros((40, 12, 12), dtype=np.int64)
    truth[2:38, 3:9, 3:9] = 1  # a 36-voxel-long bar
    pred = truth.copy()
    pred[14:] = 0  # its first third found, the rest missed
    scores = structure_scores(pred, truth, [1], directed=True)[1]
    assert scores["hd95_truth_to_pred"] > 15 and scores["hd95_pred_to_truth"] < 4
    assert scores["hd95"] == scores["hd95_truth_to_pred"]


def test_a_stray_piece_raises_only_the_prediction_to_truth_distance():
    truth = _cube((40, 40, 40), 4, 12)
    pred = truth.copy()
    pred[26:36, 26:36, 26:36] = 1  # an island as large as the structure, about 25 voxels away
    scores = structure_scores(pred, truth, [1], directed=True)[1]
    assert scores["hd95_pred_to_truth"] > 15 and scores["hd95_truth_to_pred"] == 0.0
    assert scores["hd95"] == scores["hd95_pred_to_truth"]


def test_directed_distances_are_nan_where_a_side_is_empty_and_absent_unless_asked():
    truth = _cube()
    scores = structure_scores(np.zeros_like(truth), truth, [1], directed=True)[1]
    assert math.isnan(scores["hd95_pred_to_truth"]) and math.isnan(scores["hd95_truth_to_pred"])
    assert set(structure_scores(truth, truth, [1])[1]) == {"dice", "hd95"}


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 13), st.integers(0, 13), st.integers(0, 13), st.integers(1, 6)),
                min_size=1, max_size=3),
       st.lists(st.tuples(st.integers(0, 13), st.integers(0, 13), st.integers(0, 13), st.integers(1, 6)),
                min_size=1, max_size=3))
def test_hd95_is_the_larger_one_way_distance(pred_boxes, truth_boxes):
    def boxes(spec) -> np.ndarray:
        volume = np.zeros((16, 16, 16), dtype=np.int64)
        for x, y, z, size in spec:
            volume[x:x + size, y:y + size, z:z + size] = 1
        return volume

    scores = structure_scores(boxes(pred_boxes), boxes(truth_boxes), [1], spacing=(1.0, 2.0, 0.5), directed=True)[1]
    assert math.isclose(scores["hd95"], max(scores["hd95_pred_to_truth"], scores["hd95_truth_to_pred"]),
                        rel_tol=1e-6, abs_tol=1e-6)
