"""``benchmarks.oneshot_spine_levels``: the windows of vertebral levels it cuts from the spine CT, the floor it
stretches, its refusal of a scan with too few vertebrae, its report against the best ANTs setting, and the ANTs
harness's ``initial_transform`` that keeps every other run's cache key."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from benchmarks import oneshot_spine_levels as levels
from benchmarks.harness import ants
from benchmarks.harness.oneshot_variants import VARIANT_NAMES
from benchmarks.harness.report import about, module_command


def _spine(count: int = 12) -> np.ndarray:
    """(20, 20, K) labels: ``count`` vertebrae as boxes along axis 2, vertebra 1 at the top, each taller than the one
    above it (the lower vertebrae are larger), with a caudal 'spinous process' reaching into the next one."""
    heights = [4 + v // 3 for v in range(1, count + 1)]
    labels = np.zeros((20, 20, sum(heights) + 10), dtype=np.int16)
    top = labels.shape[2] - 5
    for vertebra, height in zip(range(1, count + 1), heights):
        labels[5:15, 5:12, top - height:top] = vertebra
        labels[9:11, 12:16, top - height - 2:top - height] = vertebra  # overlaps the next body's level
        top -= height
    return labels


def test_windows_hold_their_levels_and_adjacent_windows_share_no_slice():
    labels = _spine()
    spans = levels.windows(labels)
    assert sorted(spans) == list(range(1, 12 - levels.LEVELS + 2))
    centroid = {v: np.argwhere(labels == v)[:, 2].mean() for v in range(1, 13)}
    for first, (low, high) in spans.items():
        inside = [v for v in centroid if low <= centroid[v] < high]
        assert inside == list(range(first, first + levels.LEVELS)), (first, low, high, inside)
    _, atlas, test = levels.DIRECTIONS["upper_to_lower"]
    assert spans[atlas][0] == spans[test][1]  # atlas 3-6 and test 7-10 meet without sharing a slice
    assert spans[8][1] - spans[8][0] > spans[1][1] - spans[1][0]  # larger vertebrae, longer window


def test_window_labels_number_the_levels_and_clear_the_neighbours():
    labels = _spine()
    span = levels.windows(labels)[7]
    window = levels.window_labels(labels, 7, span)
    assert window.shape == (20, 20, span[1] - span[0])
    assert set(np.unique(window)) == {0, 1, 2, 3, 4}
    crop = labels[:, :, span[0]:span[1]]
    assert np.array_equal(window == 1, crop == 7) and np.array_equal(window == 4, crop == 10)
    assert not window[(crop == 6) | (crop == 11)].any()  # neighbours' parts in the window are background


def _data_folder(root: Path, labels: np.ndarray) -> Path:
    folder = root / "spine_ct"
    folder.mkdir(parents=True)
    affine = np.diag([-2.0, -2.0, 2.0, 1.0])
    image = (labels > 0).astype(np.float64) * 0.8 + 0.1
    nib.save(nib.Nifti1Image(image, affine), folder / "verse_spine_image704.nii.gz")
    nib.save(nib.Nifti1Image(labels.astype(np.int32), affine), folder / "verse_spine_label704.nii.gz")
    return root


def test_prepare_writes_atlas_test_unlabelled_windows_and_the_stretched_floor(tmp_path):
    labels = _spine()
    args = type("Args", (), {"data": _data_folder(tmp_path / "data", labels)})()
    data = levels.prepare(args, tmp_path / "work")
    block = data["directions"]["upper_to_lower"]
    atlas, test = nib.load(block["atlas_labels"]), nib.load(block["tests"][0][2])
    floor = np.asarray(nib.load(block["floor_labels"]).dataobj)
    assert floor.shape == test.shape and atlas.shape[2] < test.shape[2]
    assert set(np.unique(floor)) == {0, 1, 2, 3, 4}
    # the stretched atlas keeps the levels in order along the axis (level 1 cranial = high slices)
    heights = [np.argwhere(floor == v)[:, 2].mean() for v in range(1, 5)]
    assert heights == sorted(heights, reverse=True)
    assert block["unlabeled"][0] == block["tests"][0][1] and len(block["unlabeled"]) == 1 + len(levels.BETWEEN)
    # cut across the axis to the vertebrae and the margin
    assert atlas.shape[:2] == (min(20, 10 + 2 * levels.MARGIN), min(20, 11 + 2 * levels.MARGIN))
    names = json.loads(Path(block["names_file"]).read_text())
    assert names["1"] == "level 1 (vertebra 3 → 7)"


def test_prepare_refuses_a_scan_with_too_few_vertebrae_naming_the_file(tmp_path):
    args = type("Args", (), {"data": _data_folder(tmp_path / "data", _spine(8))})()
    with pytest.raises(SystemExit, match="verse_spine_label704.nii.gz: fewer vertebrae than the windows need"):
        levels.prepare(args, tmp_path / "work")
    assert levels.main(["--data", str(tmp_path / "none"), "--work", str(tmp_path / "w")]) == 0
    # A user's file as the report folder is refused before any work, and left as it was.
    user_file = tmp_path / "notes.txt"
    user_file.write_text("mine")
    with pytest.raises(SystemExit, match="notes.txt: is a file, not a folder for the report"):
        levels.main(["--data", str(args.data), "--work", str(tmp_path / "w2"), "--out", str(user_file)])
    assert user_file.read_text() == "mine" and not (tmp_path / "w2").exists()


def _method(name: str, kind: str, dices: list[float], hd95: float) -> dict:
    cases = [{"case": "vertebrae 7-10", "structures": {str(k): {"dice": d, "hd95": hd95, "name": f"level {k}"}
                                                       for k, d in enumerate(dices, 1)}}]
    return {"name": name, "kind": kind, "resolution_mm": 2.0, "cases": cases, "train": None,
            "segment": {"seconds_per_volume": 5.0, "peak_rss_mb": 500.0, "registration_seconds": 2.0}}


def test_report_compares_ours_with_the_best_ants_setting_over_the_seeds(tmp_path):
    ants_runs = [_method(name, "peer", [dice] * 4, hd) for (name, *_), dice, hd in
                 zip(levels.ANTS, [0.10, 0.12, 0.05, 0.40, 0.62, 0.61], [20.0, 19.0, 25.0, 8.0, 5.0, 6.0])]
    # antsRegistration seeds of one setting are one row with their spread: 0.62 and 0.58 average 0.60
    ants_runs.insert(5, _method(levels.ANTS[4][0], "peer", [0.58] * 4, 7.0))
    runs = [{"variant": "default", "seed": s, "method": _method("ours: default", "ours", [d] * 4, 4.0)}
            for s, d in enumerate([0.84, 0.86, 0.88])]
    block = {"title": levels.DIRECTIONS["upper_to_lower"][0], "ants": ants_runs, "runs": runs, "seeds": [0, 1, 2],
             "floor": _method("no registration (floor)", "floor", [0.5] * 4, 10.0), "test": ["vertebrae 7-10"],
             "unlabeled": ["window_7.nii.gz"]}
    result = {"about": about(module_command("benchmarks.oneshot_spine_levels")), "data": {"image": "spine.nii.gz"},
              "windows": {"3": [10, 52], "7": [52, 100]}, "directions": {"upper_to_lower": block},
              "settings": {"direction": "upper_to_lower", "seeds": [0, 1, 2], "budget": "b", "smoke": False,
                           "threads": 2, "variants": "default"}, "total_seconds": 60.0}
    levels.write_report(result, tmp_path)
    text = (tmp_path / "report.md").read_text()
    assert ("- default Dice 0.860 vs ANTs SyN (40, 20) @ 2 mm, identity start, affine pyramid 4-2-1 0.610: at least "
            "level (+0.250; the default's seed range 0.040 over 3 seed(s))") in text
    assert "- default HD95 4.00 mm vs 6.00 mm: at most level (-2.00 mm)" in text
    assert f"| {levels.ANTS[4][0]} | 2 | 0.600 [0.580–0.620] | 6.00 [5.00–7.00] |" in text
    assert "vertebrae 3-6: 10–52, vertebrae 7-10: 52–100" in text and "Not another patient" in text
    row = next(line for line in text.splitlines() if line.startswith(f"| {VARIANT_NAMES['default']} |"))
    assert "0.860 [0.840–0.880]" in row
    assert (tmp_path / "dice_upper_to_lower.png").stat().st_size > 0


def test_ants_start_is_in_the_settings_only_when_set(tmp_path, monkeypatch):
    files = []
    for name in ("fixed", "moving", "labels"):
        files.append(tmp_path / f"{name}.nii.gz")
        files[-1].write_bytes(b"x")
    settings = {"transform": "SyN", "spacing": None, "reg_iterations": [40, 20], "aff_iterations": [], "threads": 2,
                "seed": 1}
    out = tmp_path / "run"
    out.mkdir()
    (out / "labels.nii.gz").write_bytes(b"y")
    key = ants.settings_key(settings, [str(f) for f in files])
    (out / "result.json").write_text(json.dumps({"key": key, "labels": str(out / "labels.nii.gz")}))
    started = []
    monkeypatch.setattr(ants, "run_measured", lambda command, env: started.append(command) or (_ for _ in ()).throw(
        RuntimeError("child started")))
    # without a start: the key of a run made before the option existed, so its cached result is reused
    assert ants.run_ants(out, *files, "SyN", None, (40, 20), 2, reuse=True)["reused"] is True
    with pytest.raises(RuntimeError, match="child started"):
        ants.run_ants(out, *files, "SyN", None, (40, 20), 2, reuse=True,
                      registration_options={"initial_transform": "identity", "aff_shrink_factors": [4, 2, 1]})
    assert started[0][-2:] == ["--registration-options",
                               '{"aff_shrink_factors": [4, 2, 1], "initial_transform": "identity"}']
