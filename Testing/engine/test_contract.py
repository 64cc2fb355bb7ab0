"""The engine's contract package, the only engine code the Slicer side imports: it loads without torch or MONAI,
and its rules (event lines, paths, manifests and weight checks) say what both sides rely on."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from distillseg.contract import events, paths
from distillseg.contract.errors import UserError
from distillseg.contract.manifest import FORMAT_VERSION, MANIFEST, read_manifest, sha256_of, verify_weights
from manifests import manifest_fields

_BLOCKED_IMPORT = textwrap.dedent("""
    import importlib, pkgutil, sys
    class Blocker:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("torch", "monai", "safetensors", "nibabel", "nrrd", "scipy", "jsonschema"):
                raise ImportError(f"{name} is unimportable in this test")
    sys.meta_path.insert(0, Blocker())
    import distillseg.contract
    for module in pkgutil.iter_modules(distillseg.contract.__path__):
        importlib.import_module(f"distillseg.contract.{module.name}")
    loaded = sorted(name for name in sys.modules if name.startswith("distillseg"))
    print(";".join(loaded))
""")


def test_the_contract_imports_with_torch_and_monai_unimportable():
    done = subprocess.run([sys.executable, "-c", _BLOCKED_IMPORT], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    loaded = done.stdout.splitlines()[-1].strip().split(";")
    assert {"distillseg.contract.manifest", "distillseg.contract.frames", "distillseg.contract.events"} <= set(loaded)
    assert [name for name in loaded if not name.startswith("distillseg.contract")] == ["distillseg"]


def test_event_lines_round_trip_and_carry_no_nan():
    line = events.event_line(events.PROGRESS, **{events.STAGE: "student", events.STEP: 3, events.TOTAL: 10,
                                                 events.LOSS: float("nan"), events.ETA_S: float("inf")})
    event = events.parse_event_line(line)
    assert event == {"event": "progress", "stage": "student", "step": 3, "total": 10, "loss": None, "eta_s": None}
    assert json.loads(line) == event  # plain JSON: NaN and inf became null
    assert events.result_fields({"event": "result", "model": "m"}) == {"model": "m"}
    for other in ("", "Using PyTorch native grid_sample", "[1, 2]", '{"no": "event"}', "{broken"):
        assert events.parse_event_line(other) is None


def test_paths_keep_checkpoints_beside_outputs_and_jobs_per_method(tmp_path, monkeypatch):
    assert paths.checkpoint_path(tmp_path / "my model") == tmp_path / "my model.checkpoint"
    assert paths.is_checkpoint_name("my model.checkpoint") and not paths.is_checkpoint_name("my model")
    monkeypatch.setenv(paths.HOME_ENVIRONMENT_VARIABLE, str(tmp_path / "home"))
    models = paths.models_folder()
    assert models == tmp_path / "home" / "models"
    # A OneShotSeg model named "lap" must not put its inputs where IncrementalLap keeps its jobs.
    assert paths.jobs_folder(models, "oneshot") / "lap" != paths.jobs_folder(models, "lap")
    assert paths.jobs_folder(models, "lap") == tmp_path / "home" / "jobs" / "lap"


def _bundle(folder, change: dict, weights: bytes = b"weights") -> None:
    """A oneshot bundle (three weight entries on one file, valid against the engine's schema too) with ``change``
    applied (its ``weights`` entries replace those of the same name)."""
    folder.mkdir()
    (folder / "w.safetensors").write_bytes(weights)
    listed = {name: {"file": "w.safetensors", "sha256": sha256_of(folder / "w.safetensors")}
              for name in ("student", "augmenter", "atlas")}
    manifest = {**manifest_fields("oneshot"), "format_version": FORMAT_VERSION, **change,
                "weights": {**listed, **change.get("weights", {})} if change.get("weights") != {} else {}}
    (folder / MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")


@pytest.mark.parametrize("change, sentence", [
    ({"format_version": "1"}, "model format version '1' is not a positive whole number"),
    ({"format_version": True}, "model format version True is not a positive whole number"),
    ({"format_version": FORMAT_VERSION + 1}, f"model format version {FORMAT_VERSION + 1} is newer"),
    ({"method": "lap"}, "this is a IncrementalLap (laparoscopic frames) model, not a OneShotSeg"),
    ({"weights": {"student": {"file": "../w.safetensors", "sha256": "0"}}}, "is not a plain file name"),
    ({"weights": {"student": {"file": "w.safetensors", "sha256": "0" * 64}}}, "does not match the SHA-256"),
    ({"weights": {"student": {"file": "gone.safetensors", "sha256": "0"}}}, "listed in the manifest is missing"),
    ({"weights": {}}, "the manifest lists no weight files"),
])
def test_manifests_and_weights_are_checked_with_one_sentence(tmp_path, change, sentence):
    _bundle(tmp_path / "model", change)
    with pytest.raises(UserError) as raised:
        verify_weights(tmp_path / "model", read_manifest(tmp_path / "model", "oneshot"))
    assert sentence in str(raised.value) and str(raised.value).endswith(".")


def test_a_model_file_or_missing_folder_is_named_as_such(tmp_path):
    (tmp_path / "model.zip").write_bytes(b"PK")
    with pytest.raises(UserError, match="is a file, not a model folder"):
        read_manifest(tmp_path / "model.zip")
    with pytest.raises(UserError, match="model folder does not exist"):
        read_manifest(tmp_path / "missing")
    _bundle(tmp_path / "good", {})
    assert read_manifest(tmp_path / "good", "oneshot")["method"] == "oneshot"



@pytest.mark.parametrize("name", ["overlay.png", "overlay.JPG", "overlay.tif"])
def test_a_picture_is_replaced_only_when_its_kind_recognises_it(tmp_path, name):
    """``write_frame`` over an existing file: ``ANY_FILE`` (the library default) replaces it; ``PICTURE`` (what
    ``lap segment --overlay`` passes) replaces only a PNG the engine wrote, and refuses anything else in one
    sentence (the picture's format once shadowed its kind, so a second run over its own result was a traceback)."""
    import numpy as np

    from distillseg.contract.frames import PICTURE, write_frame

    frame = np.zeros((8, 8, 3), np.uint8)
    path = write_frame(tmp_path / name, frame)
    write_frame(path, frame + 1)  # ANY_FILE
    if path.suffix == ".png":
        before = path.read_bytes()
        write_frame(path, frame, kind=PICTURE)
        assert path.read_bytes() != before
    else:  # only a PNG carries the engine's mark
        with pytest.raises(UserError, match="already exists and is not a picture written by distillseg"):
            write_frame(path, frame, kind=PICTURE)
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]
