"""``distillseg lap`` end to end on tiny synthetic data: base step, one incremental step, segment, evaluate, sample,
restore; the bundle holds no frame; malformed input gives one sentence, exit code != 0 and no output."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from distillseg.cli import main
from distillseg.common.bundle import save_bundle
from distillseg.contract.frames import read_frame, read_mask, write_index_png
from distillseg.lap.model_bundle import load_lap_model
from conftest import ENGINE_THREADS

TINY = ["--batch-size", "4", "--sample-steps", "3", "--progress", "none", "--threads", ENGINE_THREADS]
TINY_TRAIN = ["--size", "64", "64", *TINY]


def lap(*args) -> int:
    return main(["lap", *[str(a) for a in args]])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("lap")
    assert lap("demo-data", "--out", root / "demo", "--patients", 4, "--frames-per-patient", 3, "--size", 72, 88,
               "--progress", "none") == 0
    assert lap("train", "--data", root / "demo", "--classes", "liver,stomach,colon", "--out", root / "m0",
               "--patients", "01,02", "--iterations", 4, "--diffusion-iterations", 3, *TINY_TRAIN) == 0
    # bf16 autocast on the CPU exercises the mixed-precision path that CUDA runs.
    assert lap("learn", "--model", root / "m0", "--data", root / "demo", "--new-classes", "small_intestine",
               "--out", root / "m1", "--patients", "03,04", "--iterations", 3, "--diffusion-iterations", 2,
               "--replay", 3, "--precision", "bf16", "--eval-data", root / "demo", *TINY) == 0
    return root


def test_base_and_incremental_step_bundle(trained):
    m0, m1 = load_lap_model(trained / "m0"), load_lap_model(trained / "m1")
    assert m0.registry.names == ["liver", "stomach", "colon"] and m0.step == 0
    assert m1.registry.names == ["liver", "stomach", "colon", "small_intestine"] and m1.step == 1
    assert [e.step for e in m1.registry.entries] == [0, 0, 0, 1]
    manifest = json.loads((trained / "m1" / "manifest.json").read_text())
    assert manifest["method"] == "lap" and manifest["labels"][3]["name"] == "small_intestine"
    assert set(manifest["weights"]) == {"segmenter", "segmenter_step0", "diffusion_step0", "diffusion_step1",
                                        "projection"}
    assert manifest["history"][0]["options"]["class_balance"] == 0.5  # the default
    step = manifest["history"][1]
    assert step["strategy"] == "ours" and step["replayed_frames"] == 3
    assert step["strategy_settings"]["pseudo_labels"] and step["strategy_settings"]["replay"]  # ours' defaults
    assert set(step["scores"]) == {"after_on_training_frames", "before", "after"}
    assert "small_intestine" in step["scores"]["after"] and "small_intestine" not in step["scores"]["before"]
    assert manifest["synthetic_training_data"] is True and "SYNTHETIC" in manifest["note"]
    # The earlier version inside the new bundle is exactly the old model.
    for key, value in m0.segmenter.items():
        assert torch.equal(m1.earlier_weights(0)[key], value)
    assert not list(trained.glob(".m1.tmp-*")) and not (trained / "m1.checkpoint").exists()


def test_bundle_holds_no_frame(trained):
    """No training frame is in any tensor or file of the bundle (raw bytes, pixel runs, or [0,1] floats)."""
    frames = [read_frame(p) for p in sorted((trained / "demo" / "multilabel").glob("*/image*.png"))]
    pngs = [p.read_bytes() for p in sorted((trained / "demo" / "multilabel").glob("*/image*.png"))]
    files = [p for p in (trained / "m1").iterdir()]
    blobs = [p.read_bytes() for p in files]
    for png in pngs:
        assert not any(png[64:192] in blob for blob in blobs)
    tensors = {}
    for path in files:
        if path.suffix == ".safetensors":
            tensors.update({f"{path.name}:{k}": v for k, v in load_file(str(path)).items()})
    for frame in frames:
        row = frame[frame.shape[0] // 2, 8:40].reshape(-1)   # a run of 96 consecutive RGB bytes
        for name, tensor in tensors.items():
            flat = tensor.detach().float().flatten().numpy()
            if flat.size < row.size:
                continue
            for scale in (1.0, 1 / 255.0):
                target = row.astype(np.float32) * scale
                hits = np.flatnonzero(np.isclose(flat[: flat.size - row.size + 1], target[0]))
                assert not any(np.allclose(flat[h:h + row.size], target) for h in hits[:1000]), name
        assert not any(frame.tobytes()[:96] in blob for blob in blobs)


def test_segment_evaluate_sample_restore(trained):
    frame = sorted((trained / "demo" / "multilabel" / "04").glob("image*.png"))[0]
    assert lap("segment", "--model", trained / "m1", "--input", frame, "--output", trained / "seg.png",
               "--overlay", "--progress", "none") == 0
    labels = read_mask(trained / "seg.png")
    assert labels.shape == read_frame(frame).shape[:2] and labels.max() <= 4
    assert read_frame(trained / "seg_overlay.png").shape == read_frame(frame).shape
    frames = trained / "frames04"
    frames.mkdir(exist_ok=True)
    for image in frame.parent.glob("image*.png"):
        shutil.copy(image, frames / image.name)
    assert lap("segment", "--model", trained / "m1", "--input", frames, "--output", trained / "segs",
               "--progress", "none") == 0
    assert len(list((trained / "segs").glob("*.png"))) == 3
    assert lap("evaluate", "--model", trained / "m1", "--data", trained / "demo", "--source", "multilabel",
               "--patients", "04", "--report", trained / "r.json", "--progress", "none") == 0
    report = json.loads((trained / "r.json").read_text())
    assert set(report["per_class"]) == {"liver", "stomach", "colon", "small_intestine"}
    assert report["synthetic_data"] is True and {"mean_iou_old", "mean_iou_new", "mean_iou_all"} <= set(report)
    assert lap("evaluate", "--model", trained / "m0", "--data", trained / "demo", "--source", "multilabel",
               "--patients", "04", "--report", trained / "r0.json", "--progress", "none") == 0
    first = json.loads((trained / "r0.json").read_text())  # a first model: its structures are the base ones
    assert {"mean_iou_base", "mean_iou_all"} <= set(first) and not {"mean_iou_old", "mean_iou_new"} & set(first)
    assert lap("sample", "--model", trained / "m1", "--n", 2, "--out", trained / "samples", "--device", "cpu",
               "--progress", "none") == 0
    assert len(list((trained / "samples").glob("synthetic_00?.png"))) == 2
    assert "SYNTHETIC" in (trained / "samples" / "README.txt").read_text()
    assert lap("restore", "--model", trained / "m1", "--step", 0, "--out", trained / "m0_again",
               "--progress", "none") == 0
    again, m0 = load_lap_model(trained / "m0_again"), load_lap_model(trained / "m0")
    assert again.registry.names == m0.registry.names and again.step == 0
    assert all(torch.equal(again.segmenter[k], v) for k, v in m0.segmenter.items())


def _assert_failed_cleanly(code, capsys, out, *words):
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("error: "), err
    for word in words:
        assert word in err[0], err[0]
    assert not out.exists() and not list(out.parent.glob(f".{out.name}.tmp-*"))


def test_malformed_inputs(trained, tmp_path, capsys):
    demo, out = trained / "demo", tmp_path / "out"
    train = ["train", "--out", out, "--iterations", 1, "--diffusion-iterations", 0, *TINY_TRAIN]
    bad = tmp_path / "bad"
    shutil.copytree(demo, bad, ignore=shutil.ignore_patterns("multilabel"))
    shutil.rmtree(bad / "spleen")
    _assert_failed_cleanly(lap(*train, "--data", bad, "--classes", "liver,spleen"), capsys, out,
                           "spleen", "structure folder is missing")
    _assert_failed_cleanly(lap(*train, "--data", demo, "--classes", "liver,livr"), capsys, out,
                           "unknown structure name 'livr'")
    mask = sorted((bad / "liver").glob("*/mask*.png"))[0]
    write_index_png(mask, np.zeros((10, 10), np.uint8))
    _assert_failed_cleanly(lap(*train, "--data", bad, "--classes", "liver"), capsys, out, mask.name,
                           "but its frame")
    shutil.copy(mask.with_name(mask.name.replace("mask", "image")), tmp_path / "keep.png")
    image = sorted((bad / "stomach").glob("*/image*.png"))[0]
    Image.fromarray(read_frame(image)[..., 0]).save(image)
    _assert_failed_cleanly(lap(*train, "--data", bad, "--classes", "stomach"), capsys, out, image.name,
                           "colour (RGB) frame is needed")
    _assert_failed_cleanly(lap("segment", "--model", trained / "m1", "--input", image, "--output", out / "x.png",
                               "--progress", "none"), capsys, out, "colour (RGB) frame is needed")
    save_bundle(tmp_path / "oneshot_model", {"method": "oneshot"}, {"student": {"w": torch.ones(2)}})
    _assert_failed_cleanly(lap("learn", "--model", tmp_path / "oneshot_model", "--data", demo, "--new-classes",
                               "spleen", "--out", out, *TINY), capsys, out,
                           "OneShotSeg (3D one-shot) model, not a IncrementalLap")
    _assert_failed_cleanly(lap("learn", "--model", trained / "m0", "--data", demo, "--new-classes", "liver",
                               "--out", out, *TINY), capsys, out, "already knows the structure 'liver'")


def test_interrupted_training_resumes_to_the_same_weights(trained, tmp_path, monkeypatch):
    """A run cancelled after a checkpoint, then resumed, ends bit for bit where an uninterrupted run ends."""
    from distillseg.lap import segmenter_training

    common = ["train", "--data", trained / "demo", "--classes", "liver,colon", "--patients", "01,02",
              "--iterations", 4, "--checkpoint-every", 2, "--diffusion-iterations", 0, *TINY_TRAIN]
    assert lap(*common, "--out", tmp_path / "whole") == 0
    original = segmenter_training.SegmenterTrainer.loss

    def cancel_at_three(self, iteration):
        if iteration == 3:
            raise KeyboardInterrupt
        return original(self, iteration)

    monkeypatch.setattr(segmenter_training.SegmenterTrainer, "loss", cancel_at_three)
    assert lap(*common, "--out", tmp_path / "resumed") == 130
    assert not (tmp_path / "resumed").exists() and (tmp_path / "resumed.checkpoint").is_dir()
    monkeypatch.setattr(segmenter_training.SegmenterTrainer, "loss", original)
    assert lap(*common, "--out", tmp_path / "resumed", "--resume") == 0
    assert not (tmp_path / "resumed.checkpoint").exists()
    whole, resumed = load_lap_model(tmp_path / "whole"), load_lap_model(tmp_path / "resumed")
    assert all(torch.equal(resumed.segmenter[k], v) for k, v in whole.segmenter.items())


def test_segment_odd_paths_and_a_bad_frame_in_a_folder(trained, tmp_path, capsys):
    frame = sorted((trained / "demo" / "multilabel" / "04").glob("image*.png"))[0]
    folder = tmp_path / "frames with spaces ü"
    folder.mkdir()
    shutil.copy(frame, folder / "a frame é.png")
    assert lap("segment", "--model", trained / "m1", "--input", folder, "--output", tmp_path / "out ö",
               "--overlay", "--progress", "none") == 0
    assert sorted(p.name for p in (tmp_path / "out ö").iterdir()) == ["a frame é.png", "a frame é_overlay.png"]
    (folder / "b truncated.png").write_bytes(frame.read_bytes()[:200])
    out = tmp_path / "second"
    _assert_failed_cleanly(lap("segment", "--model", trained / "m1", "--input", folder, "--output", out,
                               "--progress", "none"), capsys, out / "b truncated.png", "b truncated.png",
                           "cannot be read as an image")
    assert not out.exists()   # the good frame's output was taken back too, and the folder made for it
