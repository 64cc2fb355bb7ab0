"""Index masks' rules (``distillseg.lap.index_masks``): 255 = no label in training targets and scores, a value the
label table does not name is refused (or the frame left out with ``--unknown-values skip``); and the real
Endoscapes-Seg50 frames' defects (``../shared/data``, skipped when absent): the frame with value 7, all-black frames
and frames without any structure."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from distillseg.cli import main
from distillseg.contract.errors import UserError
from distillseg.contract.frames import write_index_png
from distillseg.lap.cli import add_lap_verbs
from distillseg.lap.data import find_records, load_frameset
from distillseg.lap.evaluation import confusion_scores
from distillseg.lap.index_masks import UNKNOWN_VALUE_RULES
from distillseg.lap.mib_losses import IGNORE, new_class_dice, unbiased_cross_entropy
from conftest import ENGINE_THREADS

TINY = ["--size", "64", "64", "--batch-size", "4", "--iterations", "3", "--diffusion-iterations", "0",
        "--progress", "none", "--threads", ENGINE_THREADS, "--device", "cpu"]
BLACK = ("10_20350", "38_50100", "39_27425", "39_40925", "117_23125", "153_20700", "153_21450")
NO_STRUCTURE = ("105_23200", "117_29125")


def lap(*args) -> int:
    return main(["lap", *[str(a) for a in args]])


def _folder(root: Path, masks: dict[str, np.ndarray], labels) -> Path:
    """A generic folder: one textured frame per mask (images/p1/<name>.png) and ``labels`` as labels.json."""
    rng = np.random.default_rng(0)
    for name, mask in masks.items():
        for part in ("images", "masks"):
            (root / part / "p1").mkdir(parents=True, exist_ok=True)
        frame = rng.integers(40, 255, (*mask.shape, 3), dtype=np.uint8)
        Image.fromarray(frame).save(root / "images" / "p1" / f"{name}.png")
        write_index_png(root / "masks" / "p1" / f"{name}.png", mask)
    (root / "labels.json").write_text(json.dumps(labels), encoding="utf-8")
    return root


def _uncertain_mask() -> np.ndarray:
    mask = np.zeros((40, 48), np.uint8)
    mask[5:20, 5:30] = 1
    mask[25:35, 10:40] = 255
    return mask


def test_uncertain_pixels_are_no_label_in_targets_and_leave_scores_unchanged(tmp_path):
    mask = _uncertain_mask()
    root = _folder(tmp_path, {"f1": mask}, {"1": "liver", "2": "colon"})
    records, table = find_records(root, ["liver"])
    frames = load_frameset(records, {"liver": 1}, (40, 48), table)
    labels = frames.labels[0]
    assert torch.equal(labels == IGNORE, torch.from_numpy(mask == 255))          # training targets: IGNORE there
    assert set(frames.summary()["labelled_pixels"]) == {"1"}                    # and no "255" structure counted
    # A prediction right everywhere else: wrong over the uncertain region (liver, or background) changes nothing.
    right = torch.from_numpy(mask.astype(np.int64))[None].clone()
    right[right == 255] = 0
    wrong = right.clone()
    wrong[0][torch.from_numpy(mask == 255)] = 1
    for predicted in (right, wrong):
        scores = confusion_scores(predicted, frames.labels, [1], frames.annotated)
        assert scores[1]["iou"] == 1.0 and scores[1]["dice"] == 1.0
    # The training loss takes no gradient from them either.
    logits = torch.randn(1, 2, 40, 48, requires_grad=True)
    F.cross_entropy(logits, frames.labels.long(), ignore_index=IGNORE).backward()
    assert logits.grad[0, :, torch.from_numpy(mask == 255)].abs().max() == 0


def test_a_table_that_names_255_keeps_it_a_structure(tmp_path):
    mask = (_uncertain_mask() == 255).astype(np.uint8) * 255     # a binary 0/255 mask in a generic folder
    root = _folder(tmp_path, {"f1": mask}, {"255": "tumour"})
    records, table = find_records(root, ["tumour"])
    frames = load_frameset(records, {"tumour": 1}, (40, 48), table)
    assert torch.equal(frames.labels[0] == 1, torch.from_numpy(mask == 255)) and IGNORE not in frames.labels


def test_a_value_the_table_does_not_name_is_refused_or_its_frame_skipped(tmp_path):
    odd = _uncertain_mask()
    odd[0:3, 0:3] = 7
    root = _folder(tmp_path, {"f1": _uncertain_mask(), "f2": odd}, {"1": "liver"})
    records, table = find_records(root, ["liver"])
    mask = root / "masks" / "p1" / "f2.png"
    with pytest.raises(UserError, match=f"{mask}: mask of frame f2.png holds value 7, which .*labels.json does not "
                                        "name .*; add it to labels.json, correct the mask, or leave such frames out "
                                        "with --unknown-values skip.$"):
        load_frameset(records, {"liver": 1}, (40, 48), table)
    records, table = find_records(root, ["liver"], unknown_values="skip")
    frames = load_frameset(records, {"liver": 1}, (40, 48), table)
    assert len(frames) == 1 and frames.skipped == [root / "images" / "p1" / "f2.png"]
    assert frames.annotated.shape == (1, 1)
    with pytest.raises(UserError, match="Unknown rule 'background'"):
        find_records(root, ["liver"], unknown_values="background")


def test_cli_offers_the_engine_rules():
    import argparse

    parser = argparse.ArgumentParser()
    add_lap_verbs(parser.add_subparsers())
    train = parser.parse_args(["lap", "train", "--data", "d", "--classes", "a", "--out", "m"])
    assert train.unknown_values == "refuse"
    for rule in UNKNOWN_VALUE_RULES:
        assert parser.parse_args(["lap", "evaluate", "--model", "m", "--data", "d", "--report", "r.json",
                                  "--unknown-values", rule]).unknown_values == rule


# ------------------------------------------------------------------------------------------------ real frames
@pytest.fixture(scope="module")
def endoscapes(shared_data) -> Path:
    root = shared_data / "laparoscopy" / "endoscapes_seg50"
    if not (root / "labels.json").is_file():
        pytest.skip(f"{root} is absent")
    return root


def _real_copy(endoscapes: Path, out: Path, stems) -> Path:
    """A generic folder in ``out`` with the real frames ``stems`` (images/<video>/<stem>.jpg + masks)."""
    for stem in stems:
        video = stem.split("_")[0]
        for part, suffix in (("images", ".jpg"), ("masks", ".png")):
            (out / part / video).mkdir(parents=True, exist_ok=True)
            shutil.copy(endoscapes / part / video / f"{stem}{suffix}", out / part / video / f"{stem}{suffix}")
    shutil.copy(endoscapes / "labels.json", out / "labels.json")
    return out


def test_real_frame_with_value_7_is_named(endoscapes, tmp_path, capsys):
    code = lap("train", "--data", endoscapes, "--patients", "153", "--classes", "gallbladder,tool",
               "--out", tmp_path / "m", *TINY)
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 2 and not (tmp_path / "m").exists()
    assert error.startswith(f"error: {endoscapes / 'masks' / '153' / '153_32700.png'}: mask of frame 153_32700.jpg "
                            "holds value 7, which ") and "add it to labels.json" in error


def test_real_defects_load_and_train(endoscapes, tmp_path, capsys):
    """All-black frames, frames without any structure and (skipped) the value-7 frame: finite losses, a model."""
    data = _real_copy(endoscapes, tmp_path / "data", (*BLACK, *NO_STRUCTURE, "153_32700", "4_22450", "4_23200"))
    records, table = find_records(data, ["cystic_artery", "gallbladder", "tool"], unknown_values="skip")
    frames = load_frameset(records, {"cystic_artery": 1, "gallbladder": 2, "tool": 3}, (64, 64), table)
    assert len(frames) == len(BLACK) + len(NO_STRUCTURE) + 2 and [p.stem for p in frames.skipped] == ["153_32700"]
    empty = torch.tensor([frames.labels[i].max() == 0 for i in range(len(frames))])
    assert int(empty.sum()) == len(BLACK) + len(NO_STRUCTURE)
    # Losses on the empty frames alone (background everywhere, no new structure): finite, gradients finite.
    logits = torch.randn(int(empty.sum()), 4, 64, 64, requires_grad=True)
    targets = frames.labels[empty].long()
    loss = (F.cross_entropy(logits, targets, ignore_index=IGNORE) + unbiased_cross_entropy(logits, targets, 2)
            + new_class_dice(logits, targets, 2))
    loss.backward()
    assert math.isfinite(float(loss.detach())) and torch.isfinite(logits.grad).all()
    # The CLI trains on them (every batch holds empty frames) and scores them without a division by zero.
    assert lap("train", "--data", data, "--classes", "gallbladder,tool", "--unknown-values", "skip",
               "--out", tmp_path / "m", *TINY) == 0
    assert "153_32700.jpg: left out" in capsys.readouterr().err
    history = json.loads((tmp_path / "m" / "manifest.json").read_text())["history"][0]
    assert all(math.isfinite(v) for v in history["loss_terms"].values())
    black = _real_copy(endoscapes, tmp_path / "black", BLACK)
    assert lap("evaluate", "--model", tmp_path / "m", "--data", black, "--report", tmp_path / "r.json",
               "--progress", "none", "--device", "cpu") == 0
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["frames"] == len(BLACK)
    assert all(s["iou"] is None or 0 <= s["iou"] <= 1 for s in report["per_class"].values())
