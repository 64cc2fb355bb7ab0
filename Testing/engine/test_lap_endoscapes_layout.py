"""The official Endoscapes2023 release layout (``distillseg.lap.endoscapes_data``) on a tiny generated tree:
detection, the official splits and class values, 255 = no label, refusals, and ``lap train`` / ``lap evaluate``
through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from distillseg.cli import main
from distillseg.contract.errors import UserError
from distillseg.lap.data import find_records, load_frameset
from distillseg.lap.endoscapes_data import CLASSES
from distillseg.lap.mib_losses import IGNORE
from conftest import ENGINE_THREADS

FRAMES = {"train_seg": ("4_22450", "4_23200", "10_16600"), "val_seg": ("126_10825", "153_32700"),
          "test_seg": ("165_22925",)}
TINY = ["--size", "64", "64", "--batch-size", "4", "--iterations", "2", "--diffusion-iterations", "0",
        "--progress", "none", "--threads", ENGINE_THREADS, "--device", "cpu"]


def lap(*args) -> int:
    return main(["lap", *[str(a) for a in args]])


def _mask(stem: str) -> np.ndarray:
    """60x80 class ids: gallbladder (5) on the left, tool (6) on the right, an uncertain (255) strip; the real
    release's frame 153_32700 holds value 7."""
    mask = np.zeros((60, 80), np.uint8)
    mask[10:50, 8:36] = 5
    mask[20:40, 50:74] = 6
    mask[52:58, 10:70] = 255
    if stem == "153_32700":
        mask[0:6, 0:6] = 7
    return mask


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    """The release's folders: <split>_seg/<video>_<frame>.jpg (+ annotation_coco.json), semseg/<stem>.png with
    three identical channels, and a detection-only train/ folder the reader must not take for frames."""
    root = tmp_path_factory.mktemp("endoscapes") / "endoscapes"
    rng = np.random.default_rng(4)
    (root / "semseg").mkdir(parents=True)
    (root / "train").mkdir()
    Image.fromarray(rng.integers(30, 255, (60, 80, 3), dtype=np.uint8)).save(root / "train" / "1_29375.jpg")
    for split, stems in FRAMES.items():
        (root / split).mkdir()
        (root / split / "annotation_coco.json").write_text("{}", encoding="utf-8")
        for stem in stems:
            frame = rng.integers(30, 255, (60, 80, 3), dtype=np.uint8)
            Image.fromarray(frame).save(root / split / f"{stem}.jpg", quality=95)
            Image.fromarray(np.repeat(_mask(stem)[..., None], 3, axis=-1)).save(root / "semseg" / f"{stem}.png")
    (root / "train_seg_vids.txt").write_text("4\n10\n", encoding="utf-8")
    return root


def test_splits_videos_and_official_values(release):
    records, table = find_records(release, ["gallbladder", "tool"], split="train")
    assert [r.image.name for r in records] == ["10_16600.jpg", "4_22450.jpg", "4_23200.jpg"]
    assert {r.patient for r in records} == {"4", "10"} and all(r.all_annotated for r in records)
    assert table.values == {"gallbladder": 5, "tool": 6} and table.known == set(range(1, 7))
    assert len(find_records(release, ["tool"])[0]) == 6                                 # all = the three folders
    assert [r.patient for r in find_records(release, ["tool"], patients=["126"])[0]] == ["126"]
    assert list(CLASSES) == ["cystic_plate", "calot_triangle", "cystic_artery", "cystic_duct", "gallbladder", "tool"]
    frames = load_frameset(records, {"gallbladder": 1, "tool": 2}, (60, 80), table)
    expected = torch.from_numpy(_mask("4_22450").astype(np.int64))
    assert torch.equal(frames.labels[1].long(), expected.where(expected != 5, 1).where(expected != 6, 2))
    assert (frames.labels == IGNORE).sum() == 3 * 6 * 60


def test_refusals_name_the_file(release, tmp_path):
    with pytest.raises(UserError, match=f"{release}: unknown structure name 'liver' \\(Endoscapes names: "
                                        "cystic_plate, .*, tool\\)"):
        find_records(release, ["liver"])
    records, table = find_records(release, ["tool"], split="val")
    with pytest.raises(UserError, match=f"{release / 'semseg' / '153_32700.png'}: mask of frame 153_32700.jpg holds "
                                        "value 7, which the Endoscapes2023 class table does not name"):
        load_frameset(records, {"tool": 1}, (32, 32), table)
    partial = tmp_path / "partial"
    (partial / "semseg").mkdir(parents=True)
    (partial / "train_seg").mkdir()
    Image.fromarray(np.full((40, 40, 3), 90, np.uint8)).save(partial / "train_seg" / "7_100.jpg")
    with pytest.raises(UserError, match=f"{partial / 'train_seg' / '7_100.jpg'}: has no mask "
                                        "\\(expected semseg/7_100.png\\)"):
        find_records(partial, ["tool"])
    with pytest.raises(UserError, match=f"{partial / 'val_seg'}: folder of the official 'val' split is missing"):
        find_records(partial, ["tool"], split="val")


def test_train_and_evaluate_through_the_cli(release, tmp_path, capsys):
    assert lap("train", "--data", release, "--split", "train", "--classes", "gallbladder,tool",
               "--out", tmp_path / "m", *TINY) == 0
    manifest = json.loads((tmp_path / "m" / "manifest.json").read_text())
    assert manifest["history"][0]["data"]["frames"] == 3 and manifest["history"][0]["data"]["patients"] == 2
    report = tmp_path / "r.json"
    evaluate = ["evaluate", "--model", tmp_path / "m", "--data", release, "--split", "val", "--report", report,
                "--progress", "none", "--device", "cpu"]
    capsys.readouterr()
    assert lap(*evaluate) == 2 and not report.exists()
    assert "153_32700.png: mask of frame 153_32700.jpg holds value 7" in capsys.readouterr().err
    assert lap(*evaluate, "--unknown-values", "skip") == 0
    assert json.loads(report.read_text())["frames"] == 1
