"""Untrusted model files and repeatable training, for both methods, on real bundles written by the CLI:

- segmenting with a OneShotSeg or an IncrementalLap bundle never unpickles anything (pickle and ``torch.load``
  are made to fail for the whole CLI run), and no engine code reads weights except through the bundle loader
  (which checks SHA-256) or the checkpoint loader;
- every weight file of either method's bundle, altered by one byte, is refused by the loader that reads it;
- the same seed on the CPU gives bit-identical weights twice (oneshot and lap), and every manifest records the
  versions of torch, MONAI and the engine that made it.

``test_common_bundle`` covers the loader itself on hand-made bundles; ``OneShotSeg``'s zip import is covered in
``Testing/mrml`` (``test_model_store``, ``test_bad_input_glue``).
"""

from __future__ import annotations

import json
import pickle
import re
import shutil
from pathlib import Path

import monai
import numpy as np
import pytest
import torch

import distillseg
from conftest import REPO
from distillseg.cli import main
from distillseg.common.bundle import load_bundle, save_bundle
from distillseg.contract.errors import UserError
from distillseg.lap.contrastive import ProjectionHead
from distillseg.lap.diffusion import build_diffusion_net
from distillseg.lap.model_bundle import LapModel, load_lap_model, save_lap_model
from distillseg.oneshot.predict import OneShotPredictor
from manifests import manifest_fields
from tiny_models import LAP_TINY, ONESHOT_TINY, checked, distillseg as run_cli, lap_fixture, oneshot_fixture


@pytest.fixture(scope="module")
def oneshot(tmp_path_factory):
    return oneshot_fixture(tmp_path_factory)


@pytest.fixture(scope="module")
def lap(tmp_path_factory):
    return lap_fixture(tmp_path_factory)


@pytest.fixture(scope="module")
def lap_with_history(lap, tmp_path_factory):
    """The tiny lap model saved again as step 1 with an earlier version, a projection head and a replay model, so
    every kind of weight file a lap bundle holds is present (written by the engine's own writer, each with the
    tensors its network has: the loaders check them tensor by tensor)."""
    model = load_lap_model(lap.model)
    later = LapModel(config=model.config, registry=model.registry, size=model.size, step=1,
                     segmenter=model.segmenter, diffusion_config=model.diffusion_config, history=model.history,
                     projection=ProjectionHead(model.config.embedding_channels).state_dict(),
                     diffusion={0: build_diffusion_net(model.diffusion_config).state_dict()},
                     earlier={0: model.segmenter})
    return save_lap_model(tmp_path_factory.mktemp("lap history") / "model", later)


def _refuse_pickle(monkeypatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("a model file was unpickled")

    class RefusingUnpickler:
        def __init__(self, *args, **kwargs):
            refuse()

    for name in ("load", "loads"):
        monkeypatch.setattr(pickle, name, refuse)
    monkeypatch.setattr(pickle, "Unpickler", RefusingUnpickler)
    monkeypatch.setattr(torch, "load", refuse)


def test_segmenting_never_unpickles(oneshot, lap, lap_with_history, tmp_path, monkeypatch):
    import distillseg.lap.frame_jobs  # noqa: F401  (imported before pickle is refused: imports are code,
    import distillseg.oneshot.segment  # noqa: F401            not model files)

    _refuse_pickle(monkeypatch)
    assert main(["oneshot", "segment", "--model", str(oneshot.model), "--input", str(oneshot.case["scans"][0]),
                 "--output", str(tmp_path / "labels.nrrd"), "--device", "cpu", "--progress", "none"]) == 0
    frame = sorted((lap.demo / "multilabel" / "01").glob("image*.png"))[0]
    assert main(["lap", "segment", "--model", str(lap.model), "--input", str(frame), "--output",
                 str(tmp_path / "labels.png"), "--device", "cpu", "--progress", "none"]) == 0
    model = load_lap_model(lap_with_history)
    model.earlier_weights(0), model.diffusion_weights(0)
    assert (tmp_path / "labels.nrrd").is_file() and (tmp_path / "labels.png").is_file()


# Engine files that are copied into an exported MONAI Bundle and run there (not by the engine).
BUNDLE_SCRIPTS = {"distillseg/oneshot/bundle_runtime.py"}


def test_weights_are_read_only_through_the_checked_loaders():
    """Engine code reads safetensors only in the bundle loader (SHA-256 checked), the checkpoint loader (its own
    job's files) and the pretrained-encoder loader (a file the user names); nothing uses pickle or torch.load."""
    readers = {}
    for path in (REPO / "distillseg").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        if path.relative_to(REPO).as_posix() in BUNDLE_SCRIPTS:
            # Runs inside MONAI from an exported bundle, never in the engine: it reads the bundle's atlas.pt as
            # MONAI reads its model.pt, with torch's weights-only loader (no pickled code can run).
            text = re.sub(r"\btorch\.load\([^()]*weights_only=True\)", "", text)
        assert not re.search(r"\btorch\.load\(|\bimport pickle\b|\bpickle\.\w+\(|allow_pickle=True", text), path
        if re.search(r"\b(load_file|safe_open)\(", text):
            readers[path.relative_to(REPO).as_posix()] = True
    assert set(readers) == {"distillseg/common/bundle.py", "distillseg/common/checkpoint.py",
                            "distillseg/lap/encoder_weights.py"}


def _tampered_copy(model: Path, name: str, target: Path) -> Path:
    shutil.copytree(model, target)
    entry = json.loads((target / "manifest.json").read_text(encoding="utf-8"))["weights"][name]
    weights = target / entry["file"]
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x01
    weights.write_bytes(bytes(data))
    return target


# Which loading path reads each weight file of a OneShotSeg bundle.
ONESHOT_READERS = {"student": ["student"], "augmenter": ["augmenter"], "atlas": ["student", "augmenter"]}


@pytest.mark.parametrize("name", sorted(ONESHOT_READERS))
def test_altered_oneshot_weights_are_refused(oneshot, name, tmp_path):
    model = _tampered_copy(oneshot.model, name, tmp_path / "model")
    for predictor in ONESHOT_READERS[name]:
        with pytest.raises(UserError, match="does not match the SHA-256"):
            OneShotPredictor(load_bundle(model, "oneshot"), torch.device("cpu"), None, predictor)


@pytest.mark.parametrize("name", ["segmenter", "segmenter_step0", "diffusion_step0", "projection"])
def test_altered_lap_weights_are_refused(lap_with_history, name, tmp_path):
    model = _tampered_copy(lap_with_history, name, tmp_path / "model")
    with pytest.raises(UserError, match="does not match the SHA-256"):
        loaded = load_lap_model(model)  # reads the segmenter and the projection head
        loaded.earlier_weights(0), loaded.diffusion_weights(0)  # read when learning, sampling or restoring


def _weights(model: Path) -> dict[str, np.ndarray]:
    bundle = load_bundle(model)
    return {f"{name}/{key}": value.numpy() for name in bundle.weight_names()
            for key, value in bundle.load_weights(name).items()}


@pytest.mark.parametrize("method", ["oneshot", "lap"])
def test_same_seed_same_weights_and_versions_recorded(method, oneshot, lap, tmp_path):
    if method == "oneshot":
        case, first = oneshot.case, oneshot.model
        checked(run_cli("oneshot", "train", "--atlas", case["atlas"], "--atlas-labels", case["atlas_labels"],
                        "--unlabeled", *case["scans"], "--out", tmp_path / "again", *ONESHOT_TINY,
                        "--progress", "none"))
    else:
        first = lap.model
        checked(run_cli("lap", "train", "--data", lap.demo, "--classes", "stomach,colon", "--out", tmp_path / "again",
                        *LAP_TINY, "--progress", "none"))
    a, b = _weights(first), _weights(tmp_path / "again")
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a), \
        [k for k in a if not np.array_equal(a[k], b[k])][:5]
    for model in (first, tmp_path / "again"):
        software = load_bundle(model).manifest["software"]
        assert software["torch"] == torch.__version__ and software["monai"] == monai.__version__
        assert software["distillseg"] == distillseg.__version__


def test_save_bundle_records_versions_whatever_the_caller_says(tmp_path):
    save_bundle(tmp_path / "m", {**manifest_fields("lap"), "software": {"torch": "0.0"}, "format_version": 99},
                {"segmenter": {"w": torch.ones(1)}})
    manifest = load_bundle(tmp_path / "m").manifest
    assert manifest["software"]["torch"] == torch.__version__ and manifest["format_version"] == 1
