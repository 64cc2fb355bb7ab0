"""The model store: lists real bundles of its method, zip export/import round trips, and untrusted zips (paths
escaping the folder, links, wrong method, altered weights) are refused with nothing written."""

from __future__ import annotations

import signal
import stat
import subprocess
import sys
import zipfile

import pytest
import torch

import mrml_fixtures  # noqa: F401  (puts the module folders on sys.path)
from distillseg.contract.atomic import OutputLock
from distillseg.common.bundle import load_bundle
from manifests import hand_made_bundle
from distillseg.contract.errors import UserError
from DistillSegKernelLib.modelStore import ModelStore

LABELS = [{"value": 1, "name": "liver", "color": [200, 100, 50]}, {"value": 7, "name": "spleen", "color": [1, 2, 3]}]


def _bundle(path, method="oneshot"):
    """A real bundle written by the engine (safetensors + a schema-valid manifest with SHA-256 sums)."""
    weights = {"student": {"conv.weight": torch.arange(12, dtype=torch.float32).reshape(3, 4)}}
    return hand_made_bundle(path, method, weights, LABELS, training={"iterations": 2})


@pytest.fixture
def store(tmp_path):
    return ModelStore("oneshot", tmp_path / "store" / "models")


def _leftovers(store):
    return [p.name for p in store.folder.iterdir() if p.name.startswith(".")] if store.folder.exists() else []


def test_lists_only_complete_bundles_of_its_method(store):
    _bundle(store.folder / "brain")
    _bundle(store.folder / "frames", method="lap")
    (store.folder / "brain 2.checkpoint").mkdir()
    (store.folder / "junk").mkdir()
    (store.folder / "junk" / "manifest.json").write_text("{not json")
    models = store.models()
    assert [m.name for m in models] == ["brain"]
    assert models[0].labels.names() == {1: "liver", 7: "spleen"}
    assert "liver, spleen" in models[0].summary()
    assert store.unfinishedTrainings() == ["brain 2"]
    assert ModelStore("lap", store.folder).models()[0].name == "frames"
    assert store.uniqueName("brain") == "brain 3"  # "brain 2" is taken by the checkpoint
    assert store.uniqueName("../etc/passwd") == "_etc_passwd"
    assert store.uniqueName("Gehirn (Müller) 脳") == "Gehirn _Müller_ 脳"  # any script, no brackets or slashes


def test_export_then_import_gives_the_same_bundle(store, tmp_path):
    _bundle(store.folder / "brain")
    archive = store.exportZip("brain", tmp_path / "out" / "brain.zip")
    assert sorted(zipfile.ZipFile(archive).namelist()) == ["brain/atlas.safetensors", "brain/augmenter.safetensors",
                                                           "brain/manifest.json", "brain/student.safetensors"]
    other = ModelStore("oneshot", tmp_path / "elsewhere")
    imported = other.importZip(archive)
    assert imported.name == "brain" and imported.labels.names() == {1: "liver", 7: "spleen"}
    # The engine loads it (SHA-256 checked) and gets the same weights.
    weights = load_bundle(imported.path, "oneshot").load_weights("student")
    assert torch.equal(weights["conv.weight"], torch.arange(12, dtype=torch.float32).reshape(3, 4))
    assert other.importZip(archive).name == "brain 2"  # a second import never overwrites
    assert other.importZip(archive, name="cerveau é").name == "cerveau é"
    assert _leftovers(other) == []


def test_zip_with_manifest_at_the_root_imports_under_the_zip_name(store, tmp_path):
    bundle = _bundle(tmp_path / "b")
    with zipfile.ZipFile(tmp_path / "my model.zip", "w") as archive:
        for path in bundle.iterdir():
            archive.write(path, path.name)
    assert store.importZip(tmp_path / "my model.zip").name == "my model"


def _zipWith(tmp_path, extra):
    """A valid bundle zip plus one extra member ``(name, data, mode or None)``."""
    bundle = _bundle(tmp_path / "src")
    path = tmp_path / "evil.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for file in bundle.iterdir():
            archive.write(file, f"model/{file.name}")
        name, data, mode = extra
        info = zipfile.ZipInfo(name)
        if mode is not None:
            info.external_attr = mode << 16
        archive.writestr(info, data)
    return path


@pytest.mark.parametrize("member", [
    ("../escaped.txt", b"x", None),
    ("model/../../escaped.txt", b"x", None),
    ("/tmp/escaped.txt", b"x", None),
    ("C:/escaped.txt", b"x", None),
    ("model\\..\\..\\escaped.txt", b"x", None),
    ("model/link", b"/etc/passwd", stat.S_IFLNK | 0o777),
])
def test_zip_slip_and_links_are_refused_before_anything_is_written(store, tmp_path, member):
    archive = _zipWith(tmp_path, member)
    with pytest.raises(UserError, match="refused"):
        store.importZip(archive)
    assert not list(tmp_path.rglob("escaped.txt"))
    assert store.models() == [] and _leftovers(store) == []


def test_wrong_method_altered_weights_and_non_bundles_are_refused(store, tmp_path):
    lap = _bundle(tmp_path / "lap", method="lap")
    with zipfile.ZipFile(tmp_path / "lap.zip", "w") as archive:
        for file in lap.iterdir():
            archive.write(file, f"lap/{file.name}")
    with pytest.raises(UserError, match=r"IncrementalLap \(laparoscopic frames\) model, not a OneShotSeg"):
        store.importZip(tmp_path / "lap.zip")

    good = _bundle(tmp_path / "good")
    with zipfile.ZipFile(tmp_path / "altered.zip", "w") as archive:
        archive.write(good / "manifest.json", "m/manifest.json")
        archive.writestr("m/student.safetensors", b"not the weights the manifest promised")
    with pytest.raises(UserError, match="does not match the SHA-256"):
        store.importZip(tmp_path / "altered.zip")

    (tmp_path / "notzip.zip").write_bytes(b"hello")
    with pytest.raises(UserError, match="not a readable zip file"):
        store.importZip(tmp_path / "notzip.zip")
    with zipfile.ZipFile(tmp_path / "empty.zip", "w") as archive:
        archive.writestr("readme.txt", "no manifest")
    with pytest.raises(UserError, match="not a model bundle"):
        store.importZip(tmp_path / "empty.zip")
    assert store.models() == [] and _leftovers(store) == []


def test_delete_removes_model_and_checkpoint_only_inside_the_store(store):
    _bundle(store.folder / "brain")
    (store.folder / "brain.checkpoint").mkdir()
    store.delete("brain")
    assert not (store.folder / "brain").exists() and not (store.folder / "brain.checkpoint").exists()
    with pytest.raises(UserError, match="not a valid model name"):
        store.delete("../models")


KILLED_WRITER = """
import os, signal, sys
from pathlib import Path
from distillseg.contract.atomic import OutputLock, atomic_directory
from distillseg.contract.outputs import CHECKPOINT, bundle_folder
out = Path(sys.argv[1])
with OutputLock(out), atomic_directory(out, bundle_folder("oneshot", "a model")) as bundle, \\
        atomic_directory(Path(sys.argv[2]), CHECKPOINT) as checkpoint:
    (bundle / "student.safetensors").write_bytes(b"half")
    (checkpoint / "state.safetensors").write_bytes(b"half")
    os.kill(os.getpid(), signal.SIGKILL)  # what the out-of-memory killer does: no cleanup runs
"""


def _killedWriter(store, name):
    """A real process that dies (SIGKILL) while staging both the bundle and a checkpoint of ``name``."""
    result = subprocess.run([sys.executable, "-c", KILLED_WRITER, store.modelPath(name), store.checkpointPath(name)],
                            timeout=60)
    assert result.returncode == -signal.SIGKILL


def test_leftovers_of_a_killed_job_are_removed_and_its_checkpoint_kept(store):
    (store.folder / "brain.checkpoint").mkdir(parents=True)  # a complete earlier checkpoint: Resume needs it
    _bundle(store.folder / "other")
    (store.folder / ".other.tmp-1-abc").mkdir()  # another model's staging: not this job's
    _killedWriter(store, "brain")
    staged = sorted(n.split("-")[0] for n in _leftovers(store) if n.startswith(".brain."))
    assert staged == [".brain.checkpoint.tmp", ".brain.lock", ".brain.tmp"], staged
    store.removeLeftovers("brain")
    assert sorted(_leftovers(store)) == [".other.tmp-1-abc"]  # the lock file too: taken and removed
    assert (store.folder / "brain.checkpoint").is_dir() and store.unfinishedTrainings() == ["brain"]
    assert not (store.folder / "brain").exists() and [m.name for m in store.models()] == ["other"]


def test_leftovers_of_a_running_job_are_left_alone(store):
    _killedWriter(store, "brain")
    staged = sorted(_leftovers(store))
    with OutputLock(store.modelPath("brain")):  # a job (another Slicer) is writing "brain" now
        store.removeLeftovers("brain")
        assert sorted(_leftovers(store)) == staged
    store.removeLeftovers("missing model")  # nothing staged: nothing to do
    ModelStore("oneshot", store.folder / "absent").removeLeftovers("brain")
    assert not (store.folder / "absent").exists()
