"""``distillseg model export-bundle``: an IncrementalLap or OneShotSeg model becomes a MONAI Bundle that MONAI
runs without distillseg (``python -m monai.bundle run``, in a child process from a folder of its own) and that gives
exactly the label maps ``distillseg lap segment`` / ``distillseg oneshot segment`` give; its metadata is what
MONAI's bundle schema asks; a wrong model or OUT is refused in one sentence with every existing file left
byte-identical.

The exported models are the session's tiny models with a random head: the tiny trained models call nearly every
pixel one structure (or repeat the atlas prior), which would let a wrong argmax, crop, alignment or resampling go
unseen; with the random head every image holds several labels and class boundaries that the resampling back must
place exactly. The OneShotSeg model is also set to pre-align scans (the tiny one is trained without) and to run in
windows smaller than its grid (its training patch), so both are in the comparison.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from PIL import Image

from cli_contract import assert_one_sentence, changes, snapshot
from conftest import ENGINE_THREADS, REPO
from distillseg.cli import main
from distillseg.common.bundle import load_bundle, save_bundle
from distillseg.common.volume_io import read_image, write_image
from distillseg.lap.model_bundle import load_lap_model, save_lap_model
from distillseg.oneshot.bundle_runtime import OneShotStudent
from tiny_models import checked, distillseg, lap_fixture, oneshot_fixture

REAL_FRAMES = REPO.parent / "shared" / "data" / "laparoscopy" / "endoscapes_seg50" / "images"
# The keys MONAI's bundle metadata schema (meta_schema_20240725.json) requires, at the top and of each tensor.
REQUIRED = ("schema", "version", "monai_version", "pytorch_version", "numpy_version", "required_packages_version",
            "task", "description", "authors", "copyright", "network_data_format")
TENSOR_REQUIRED = ("type", "format", "num_channels", "spatial_shape", "dtype", "value_range")


@pytest.fixture(scope="module")
def lap_exported(tmp_path_factory):
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


WINDOW = [32, 32, 16]  # the tiny model's grid is 32³: three overlapping windows along the last axis


@pytest.fixture(scope="module")
def oneshot_exported(tmp_path_factory):
    """(the shared case's paths, model folder, bundle folder): the tiny OneShotSeg model with a random head, set to
    pre-align scans and trained on ``WINDOW`` patches, exported by the real CLI."""
    root = tmp_path_factory.mktemp("oneshot bundle export ü")
    tiny = oneshot_fixture(tmp_path_factory)
    bundle = load_bundle(tiny.model)
    manifest = json.loads(json.dumps(bundle.manifest))
    manifest["preprocessing"]["prealign"] = True
    manifest["training"]["options"]["synthesis"]["patch"] = WINDOW
    weights = {name: bundle.load_weights(name) for name in bundle.weight_names()}
    head = weights["student"]["head.weight"]
    weights["student"]["head.weight"] = 3 * torch.randn(head.shape, generator=torch.Generator().manual_seed(0))
    save_bundle(root / "random head", manifest, weights)
    checked(distillseg("model", "export-bundle", root / "random head", root / "bundle ö", "--progress", "none"))
    return tiny.case, root / "random head", root / "bundle ö"


@pytest.fixture(params=["lap", "oneshot"])
def exported(request):
    """Either method's export, for what the two share: an earlier export replaced, refusals."""
    return request.getfixturevalue(f"{request.param}_exported")


def _run_bundle(bundle: Path, frames: Path, out: Path, verb: str = "run", *extra: str) -> None:
    """``python -m monai.bundle VERB`` (run) on the CPU, without distillseg on the path, from a folder of its own (the
    bundle's ``scripts`` package must not meet another one)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if verb != "run":  # 'run' puts the bundle root on sys.path itself, the other verbs do not
        env["PYTHONPATH"] = str(bundle)
    env["CUDA_VISIBLE_DEVICES"] = ""
    command = [sys.executable, "-m", "monai.bundle", verb, *extra, "--config_file",
               bundle / "configs" / "inference.json", "--meta_file", bundle / "configs" / "metadata.json",
               "--bundle_root", bundle]
    if verb == "run":
        command += ["--dataset_dir", frames, "--output_dir", out]
    result = subprocess.run(list(map(str, command)), capture_output=True, text=True, env=env, cwd=out.parent,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]


def _same_labels_as_lap_segment(model: Path, bundle: Path, frames: Path, tmp: Path) -> None:
    """The bundle computes in fp32; ``lap segment`` does too with ``--precision fp32`` (its ``auto`` picks bf16
    autocast on CPUs with bf16 instructions, which moves a few pixels at class boundaries)."""
    _run_bundle(bundle, frames, tmp / "monai out")
    assert main(["lap", "segment", "--model", str(model), "--input", str(frames), "--output", str(tmp / "engine"),
                 "--device", "cpu", "--precision", "fp32", "--threads", ENGINE_THREADS, "--progress", "none"]) == 0
    names = sorted(p.stem for p in frames.iterdir())
    assert sorted(p.name for p in (tmp / "monai out").iterdir()) == [f"{n}_seg.png" for n in names]
    for name in names:
        theirs = np.asarray(Image.open(tmp / "monai out" / f"{name}_seg.png"))
        ours = np.asarray(Image.open(tmp / "engine" / f"{name}.png"))
        assert theirs.shape == ours.shape and theirs.dtype == ours.dtype == np.uint8, (name, theirs.shape)
        assert len(np.unique(ours)) >= 2 or name == "black", name  # one label alone would prove little
        assert np.array_equal(theirs, ours), f"{name}: {np.count_nonzero(theirs != ours)} pixels differ"


def test_bundle_gives_the_labels_of_lap_segment(lap_exported, tmp_path):
    """Synthetic frames with a black border, one as RGBA (the alpha channel is dropped), one as JPEG, and a black
    frame (no picture inside a border: taken whole)."""
    demo, model, bundle = lap_exported
    frames = tmp_path / "frames"
    frames.mkdir()
    demo = sorted((demo / "multilabel").glob("*/image*.png"))
    shutil.copy(demo[0], frames / "plain.png")
    Image.open(demo[1]).convert("RGBA").save(frames / "with alpha.png")
    Image.open(demo[2]).save(frames / "lossy.jpg", quality=80)
    Image.new("RGB", (40, 24), (6, 3, 9)).save(frames / "black.png")
    _same_labels_as_lap_segment(model, bundle, frames, tmp_path)


@pytest.mark.realdata
def test_bundle_gives_the_labels_of_lap_segment_on_real_frames(lap_exported, tmp_path):
    """Real laparoscopic JPEGs (854x480, thin black borders) from the shared data, when it is there."""
    if not REAL_FRAMES.is_dir():
        pytest.skip(f"real frames not found at {REAL_FRAMES}")
    _, model, bundle = lap_exported
    frames = tmp_path / "frames"
    frames.mkdir()
    for video in sorted(REAL_FRAMES.iterdir())[:2]:
        shutil.copy(sorted(video.glob("*.jpg"))[0], frames)
    _same_labels_as_lap_segment(model, bundle, frames, tmp_path)


def test_bundle_files_follow_monai_conventions(lap_exported):
    """Tensor-only weights under FlexibleUNet's names, metadata with the schema's keys and the labels as the
    output's channel_def, and the network shape check of ``monai.bundle`` itself."""
    from monai.bundle import verify_net_in_out
    from monai.networks.nets import FlexibleUNet

    _, model, bundle = lap_exported
    lap = load_lap_model(model)
    state = torch.load(bundle / "models" / "model.pt", weights_only=True)
    metadata = json.loads((bundle / "configs" / "metadata.json").read_text(encoding="utf-8"))
    config = json.loads((bundle / "configs" / "inference.json").read_text(encoding="utf-8"))
    net = FlexibleUNet(**{k: v for k, v in config["network_def"].items() if k != "_target_"})
    net.load_state_dict(state)  # strict: every name and shape
    assert torch.equal(state["segmentation_head.0.weight"], lap.segmenter["head.weight"])
    _follows_the_schema(metadata)
    assert metadata["network_data_format"]["outputs"]["pred"]["channel_def"] == {
        "0": "background", **{str(e.value): e.name for e in lap.registry.entries}}
    assert metadata["network_data_format"]["inputs"]["image"]["spatial_shape"] == list(lap.size)
    assert "SYNTHETIC" in metadata["description"]
    for file in ("docs/README.md", "docs/license.txt", "scripts/__init__.py", "scripts/frame_resize.py"):
        assert (bundle / file).is_file(), file
    verify_net_in_out(net_id="network_def", meta_file=str(bundle / "configs" / "metadata.json"),
                      config_file=str(bundle / "configs" / "inference.json"), bundle_root=str(bundle), device="cpu")


def _follows_the_schema(metadata: dict) -> None:
    assert all(key in metadata for key in REQUIRED), [key for key in REQUIRED if key not in metadata]
    for part in ("inputs", "outputs"):
        for tensor in metadata["network_data_format"][part].values():
            assert all(key in tensor for key in TENSOR_REQUIRED), tensor


def _oblique(affine: np.ndarray) -> np.ndarray:
    """``affine`` turned 12° about the second axis and 7° about the first, and moved (4, -3, 2) mm."""
    a, b = np.radians(12), np.radians(7)
    turn = np.eye(4)
    turn[:3, :3] = (np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
                    @ np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]]))
    turn[:3, 3] = [4, -3, 2]
    return turn @ affine


def test_bundle_gives_the_labels_of_oneshot_segment(oneshot_exported, tmp_path):
    """The unlabelled scan as it is and turned and moved away from the atlas (the pre-alignment must find the same
    world map in both programs); ``segment --precision fp32``: the bundle computes in fp32;
    ``--registration-fusion 0 --no-registration-union``: the bundle runs the student alone (``bundle_export``)."""
    case, model, bundle = oneshot_exported
    scans = tmp_path / "scans"
    scans.mkdir()
    shutil.copy(case["scans"][0], scans / "as is.nii.gz")
    volume = read_image(case["scans"][0])
    write_image(scans / "oblique.nii.gz", volume.array, _oblique(volume.affine))
    _run_bundle(bundle, scans, tmp_path / "monai out")
    assert sorted(p.name for p in (tmp_path / "monai out").iterdir()) == ["as is_seg.nii.gz", "oblique_seg.nii.gz"]
    for name in ("as is", "oblique"):
        assert main(["oneshot", "segment", "--model", str(model), "--input", str(scans / f"{name}.nii.gz"),
                     "--output", str(tmp_path / f"{name} engine.nii.gz"), "--device", "cpu", "--precision", "fp32",
                     "--registration-fusion", "0", "--no-registration-union", "--threads", ENGINE_THREADS,
                     "--progress", "none"]) == 0
        theirs = nib.load(tmp_path / "monai out" / f"{name}_seg.nii.gz")
        ours = nib.load(tmp_path / f"{name} engine.nii.gz")
        assert np.array_equal(theirs.affine, nib.load(scans / f"{name}.nii.gz").affine), name
        theirs, ours = np.asarray(theirs.dataobj), np.asarray(ours.dataobj)
        assert theirs.shape == ours.shape == volume.shape, (name, theirs.shape)
        assert set(np.unique(ours)) == {0, 1, 2, 5}, name  # every structure: a boundary to place for each
        assert np.array_equal(theirs, ours), f"{name}: {np.count_nonzero(theirs != ours)} voxels differ"


def test_oneshot_bundle_files_follow_monai_conventions(oneshot_exported, tmp_path):
    """Tensor-only weights (the student's, strictly loadable into its network, and the atlas), metadata with the
    schema's keys, the labels as the output's channel_def and the prior's channels in the input's, scripts that
    import no distillseg, and the network shape check of ``monai.bundle`` itself (in a child process: the bundle's
    ``scripts`` package must not meet the repository's)."""
    _, model, bundle = oneshot_exported
    source = load_bundle(model)
    state = torch.load(bundle / "models" / "model.pt", weights_only=True)
    atlas = torch.load(bundle / "models" / "atlas.pt", weights_only=True)
    config = json.loads((bundle / "configs" / "inference.json").read_text(encoding="utf-8"))
    metadata = json.loads((bundle / "configs" / "metadata.json").read_text(encoding="utf-8"))
    net = OneShotStudent(**{k: v for k, v in config["network_def"].items() if k != "_target_"})
    net.load_state_dict(state)  # strict: every name and shape
    assert torch.equal(state["head.weight"], source.load_weights("student")["head.weight"])
    assert torch.equal(atlas["classes"], source.load_weights("atlas")["classes"])
    assert config["window"] == WINDOW
    _follows_the_schema(metadata)
    data = metadata["network_data_format"]
    assert data["outputs"]["pred"]["channel_def"] == {"0": "background", "1": "Label 1", "2": "Label 2",
                                                      "5": "Label 5"}
    assert data["inputs"]["image"]["num_channels"] == 5 and data["inputs"]["image"]["channel_def"]["4"] == \
        "atlas prior: Label 5"
    for script in (bundle / "scripts").glob("*.py"):
        assert "import distillseg" not in script.read_text() and "from distillseg" not in script.read_text(), script
    (tmp_path / "out").mkdir()
    _run_bundle(bundle, tmp_path, tmp_path / "out", "verify_net_in_out", "network_def", "--device", "cpu")


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
    """A folder of the user's files, OUT inside or equal to the model, and a missing model."""
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
