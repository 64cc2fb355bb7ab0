"""``distillseg model export-bundle``: an IncrementalLap model becomes a MONAI Bundle that MONAI runs without
distillseg (``python -m monai.bundle run``, in a child process from a folder of its own) and that gives exactly the
label maps ``distillseg lap segment`` gives; its metadata is what MONAI's bundle schema asks; a wrong model or OUT
is refused in one sentence with every existing file left byte-identical.

The exported model is the session's tiny lap model with a random head: the tiny trained model calls nearly every
pixel one structure, which would let a wrong argmax, crop or resize go unseen; with the random head every frame
holds several labels and class boundaries that the bilinear resizing back must place exactly.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cli_contract import assert_one_sentence, changes, snapshot
from conftest import REPO
from distillseg.cli import main
from distillseg.lap.model_bundle import load_lap_model, save_lap_model
from manifests import hand_made_bundle
from tiny_models import checked, distillseg, lap_fixture

REAL_FRAMES = REPO.parent / "shared" / "data" / "laparoscopy" / "endoscapes_seg50" / "images"
# The keys MONAI's bundle metadata schema (meta_schema_20240725.json) requires, at the top and of each tensor.
REQUIRED = ("schema", "version", "monai_version", "pytorch_version", "numpy_version", "required_packages_version",
            "task", "description", "authors", "copyright", "network_data_format")
TENSOR_REQUIRED = ("type", "format", "num_channels", "spatial_shape", "dtype", "value_range")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """(demo frames, model folder, bundle folder): the tiny lap model with a random head, exported by the real
    CLI."""
    root = tmp_path_factory.mktemp("bundle export ü")
    lap = lap_fixture(tmp_path_factory)
    model = load_lap_model(lap.model)
    generator = torch.Generator().manual_seed(0)
    model.segmenter = {**model.segmenter, "head.weight": torch.randn(model.segmenter["head.weight"].shape,
                                                                     generator=generator),
                       "head.bias": torch.zeros_like(model.segmenter["head.bias"])}
    save_lap_model(root / "random head", model)
    checked(distillseg("model", "export-bundle", root / "random head", root / "bundle ö", "--progress", "none"))
    return lap.demo, root / "random head", root / "bundle ö"


def _run_bundle(bundle: Path, frames: Path, out: Path) -> None:
    """``python -m monai.bundle run`` on the CPU, without distillseg on the path, from a folder of its own (the
    bundle's ``scripts`` package must not meet another one)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["CUDA_VISIBLE_DEVICES"] = ""
    command = [sys.executable, "-m", "monai.bundle", "run", "--config_file", bundle / "configs" / "inference.json",
               "--meta_file", bundle / "configs" / "metadata.json", "--bundle_root", bundle,
               "--dataset_dir", frames, "--output_dir", out]
    result = subprocess.run(list(map(str, command)), capture_output=True, text=True, env=env, cwd=out.parent,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]


def _same_labels_as_lap_segment(model: Path, bundle: Path, frames: Path, tmp: Path) -> None:
    """The bundle computes in fp32; ``lap segment`` does too with ``--precision fp32`` (its ``auto`` picks bf16
    autocast on CPUs with bf16 instructions, which moves a few pixels at class boundaries)."""
    _run_bundle(bundle, frames, tmp / "monai out")
    assert main(["lap", "segment", "--model", str(model), "--input", str(frames), "--output", str(tmp / "engine"),
                 "--device", "cpu", "--precision", "fp32", "--threads", "2", "--progress", "none"]) == 0
    names = sorted(p.stem for p in frames.iterdir())
    assert sorted(p.name for p in (tmp / "monai out").iterdir()) == [f"{n}_seg.png" for n in names]
    for name in names:
        theirs = np.asarray(Image.open(tmp / "monai out" / f"{name}_seg.png"))
        ours = np.asarray(Image.open(tmp / "engine" / f"{name}.png"))
        assert theirs.shape == ours.shape and theirs.dtype == ours.dtype == np.uint8, (name, theirs.shape)
        assert len(np.unique(ours)) >= 2 or name == "black", name  # one label alone would prove little
        assert np.array_equal(theirs, ours), f"{name}: {np.count_nonzero(theirs != ours)} pixels differ"


def test_bundle_gives_the_labels_of_lap_segment(exported, tmp_path):
    """Synthetic frames with a black border, one as RGBA (the alpha channel is dropped), one as JPEG, and a black
    frame (no picture inside a border: taken whole)."""
    demo, model, bundle = exported
    frames = tmp_path / "frames"
    frames.mkdir()
    demo = sorted((demo / "multilabel").glob("*/image*.png"))
    shutil.copy(demo[0], frames / "plain.png")
    Image.open(demo[1]).convert("RGBA").save(frames / "with alpha.png")
    Image.open(demo[2]).save(frames / "lossy.jpg", quality=80)
    Image.new("RGB", (40, 24), (6, 3, 9)).save(frames / "black.png")
    _same_labels_as_lap_segment(model, bundle, frames, tmp_path)


@pytest.mark.realdata
def test_bundle_gives_the_labels_of_lap_segment_on_real_frames(exported, tmp_path):
    """Real laparoscopic JPEGs (854x480, thin black borders) from the shared data, when it is there."""
    if not REAL_FRAMES.is_dir():
        pytest.skip(f"real frames not found at {REAL_FRAMES}")
    _, model, bundle = exported
    frames = tmp_path / "frames"
    frames.mkdir()
    for video in sorted(REAL_FRAMES.iterdir())[:2]:
        shutil.copy(sorted(video.glob("*.jpg"))[0], frames)
    _same_labels_as_lap_segment(model, bundle, frames, tmp_path)


def test_bundle_files_follow_monai_conventions(exported):
    """Tensor-only weights under FlexibleUNet's names, metadata with the schema's keys and the labels as the
    output's channel_def, and the network shape check of ``monai.bundle`` itself."""
    from monai.bundle import verify_net_in_out
    from monai.networks.nets import FlexibleUNet

    _, model, bundle = exported
    lap = load_lap_model(model)
    state = torch.load(bundle / "models" / "model.pt", weights_only=True)
    metadata = json.loads((bundle / "configs" / "metadata.json").read_text(encoding="utf-8"))
    config = json.loads((bundle / "configs" / "inference.json").read_text(encoding="utf-8"))
    net = FlexibleUNet(**{k: v for k, v in config["network_def"].items() if k != "_target_"})
    net.load_state_dict(state)  # strict: every name and shape
    assert torch.equal(state["segmentation_head.0.weight"], lap.segmenter["head.weight"])
    assert all(key in metadata for key in REQUIRED), [key for key in REQUIRED if key not in metadata]
    for part in ("inputs", "outputs"):
        for tensor in metadata["network_data_format"][part].values():
            assert all(key in tensor for key in TENSOR_REQUIRED), tensor
    assert metadata["network_data_format"]["outputs"]["pred"]["channel_def"] == {
        "0": "background", **{str(e.value): e.name for e in lap.registry.entries}}
    assert metadata["network_data_format"]["inputs"]["image"]["spatial_shape"] == list(lap.size)
    assert "SYNTHETIC" in metadata["description"]
    for file in ("docs/README.md", "docs/license.txt", "scripts/__init__.py", "scripts/frame_resize.py"):
        assert (bundle / file).is_file(), file
    verify_net_in_out(net_id="network_def", meta_file=str(bundle / "configs" / "metadata.json"),
                      config_file=str(bundle / "configs" / "inference.json"), bundle_root=str(bundle), device="cpu")


def test_an_earlier_export_is_replaced(exported, tmp_path):
    _, model, bundle = exported
    again = shutil.copytree(bundle, tmp_path / "again")
    (again / "models" / "model.pt").write_bytes(b"stale")
    checked(distillseg("model", "export-bundle", model, again, "--progress", "none"))
    assert (again / "models" / "model.pt").read_bytes() == (bundle / "models" / "model.pt").read_bytes()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".again.")]  # no temporary left beside it


def _refused(tmp_path: Path, argv: list, *fragments: str) -> None:
    before = snapshot(tmp_path)
    sentence = assert_one_sentence(distillseg(*argv))
    for fragment in fragments:
        assert fragment in sentence, sentence
    assert not changes(before, snapshot(tmp_path))


def test_refusals(exported, tmp_path):
    """A folder of the user's files, OUT inside or equal to the model, a missing model and a OneShotSeg model."""
    _, source, _ = exported
    model = shutil.copytree(source, tmp_path / "model")
    user = tmp_path / "My Documents"
    user.mkdir()
    (user / "thesis.txt").write_text("three years of work\n", encoding="utf-8")
    _refused(tmp_path, ["model", "export-bundle", model, user], str(user),
             "is a folder that is not a MONAI Bundle written by distillseg")
    _refused(tmp_path, ["model", "export-bundle", model, model / "bundle"], "lies inside the model folder")
    _refused(tmp_path, ["model", "export-bundle", model, model], "is also an input of this job")
    _refused(tmp_path, ["model", "export-bundle", tmp_path / "no model", tmp_path / "out"], "model folder does not "
             "exist")
    oneshot = hand_made_bundle(tmp_path / "oneshot model", "oneshot")
    _refused(tmp_path, ["model", "export-bundle", oneshot, tmp_path / "out"],
             "is a OneShotSeg model; export to a MONAI Bundle supports IncrementalLap models only so far")
