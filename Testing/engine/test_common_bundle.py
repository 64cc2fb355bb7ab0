"""Bundles: round trip, no pickle, SHA-256 check, atomic replacement, locks, progress events."""

from __future__ import annotations

import io
import json
import os
import pickle
import stat

import pytest
import torch

from distillseg.contract.atomic import OutputLock, atomic_directory, remove_stale_temporaries
from distillseg.common.bundle import load_bundle, save_bundle
from distillseg.contract.outputs import bundle_kind
from distillseg.common.checkpoint import load_checkpoint, optimizer_from_flat, optimizer_to_flat, save_checkpoint
from distillseg.contract.errors import UserError
from distillseg.common.progress import Progress
from manifests import hand_made_bundle


def test_bundle_round_trip_and_versions(tmp_path):
    net = torch.nn.Conv3d(1, 2, 3)
    hand_made_bundle(tmp_path / "m", "oneshot", {"student": net.state_dict()})
    bundle = load_bundle(tmp_path / "m", method="oneshot")
    state = bundle.load_weights("student")
    for key, value in net.state_dict().items():
        assert torch.equal(state[key], value)
    assert {"torch", "monai", "distillseg"} <= set(bundle.manifest["software"])
    assert len(bundle.manifest["weights"]["student"]["sha256"]) == 64


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_every_file_of_a_bundle_and_a_checkpoint_has_the_umasks_mode(tmp_path, umask):
    """One mode for weights and manifest alike (safetensors alone would make the weights 0600)."""
    previous = os.umask(umask)
    try:
        save_bundle(tmp_path / "m", {"method": "oneshot", "labels": []}, {"student": torch.nn.Linear(2, 2).state_dict()})
        save_checkpoint(tmp_path / "m.checkpoint", {"net": torch.nn.Linear(2, 2).state_dict()}, {"step": 1})
    finally:
        os.umask(previous)
    files = [*(tmp_path / "m").iterdir(), *(tmp_path / "m.checkpoint").iterdir()]
    assert {stat.S_IMODE(f.stat().st_mode) for f in files} == {0o666 & ~umask}


def test_loading_never_unpickles(tmp_path, monkeypatch):
    hand_made_bundle(tmp_path / "m", "oneshot", {"student": {"w": torch.ones(2)}})

    def refuse(*args, **kwargs):
        raise AssertionError("pickle was used")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(torch, "load", refuse)
    assert torch.equal(load_bundle(tmp_path / "m").load_weights("student")["w"], torch.ones(2))


def test_tampered_weights_and_wrong_method_are_refused(tmp_path):
    hand_made_bundle(tmp_path / "m", "lap", {"segmenter": {"w": torch.ones(4)}})
    with pytest.raises(UserError, match="IncrementalLap"):
        load_bundle(tmp_path / "m", method="oneshot")
    weights = tmp_path / "m" / "segmenter.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1] + b"\x01")
    with pytest.raises(UserError, match="SHA-256"):
        load_bundle(tmp_path / "m").load_weights("segmenter")


def test_newer_format_and_missing_manifest(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no manifest.json"):
        load_bundle(tmp_path / "empty")
    hand_made_bundle(tmp_path / "m", "oneshot")
    manifest = json.loads((tmp_path / "m" / "manifest.json").read_text())
    manifest["format_version"] = 99
    (tmp_path / "m" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(UserError, match="newer"):
        load_bundle(tmp_path / "m")


def test_atomic_directory_keeps_old_version_on_failure(tmp_path):
    hand_made_bundle(tmp_path / "m", "oneshot", tag="old")
    with pytest.raises(RuntimeError):
        with atomic_directory(tmp_path / "m", bundle_kind("oneshot")) as tmp:
            (tmp / "manifest.json").write_text("{}")
            raise RuntimeError("killed")
    assert load_bundle(tmp_path / "m").manifest["tag"] == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["m"]


def test_stale_old_folder_is_restored(tmp_path):
    hand_made_bundle(tmp_path / "m", "oneshot", tag="old")
    (tmp_path / "m").rename(tmp_path / ".m.old-123-abc")  # killed between the two renames
    remove_stale_temporaries(tmp_path / "m")
    assert load_bundle(tmp_path / "m").manifest["tag"] == "old"


def test_output_lock_refuses_second_writer(tmp_path):
    with OutputLock(tmp_path / "m"):
        with pytest.raises(UserError, match="another job"):
            with OutputLock(tmp_path / "m"):
                pass
    with OutputLock(tmp_path / "m"):
        pass


def test_checkpoint_round_trip_restores_optimizer(tmp_path):
    net = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    net(torch.ones(1, 3)).sum().backward()
    opt.step()
    tensors, meta = optimizer_to_flat(opt)
    save_checkpoint(tmp_path / "ck", {"net": net.state_dict(), "opt": tensors}, {"step": 1, "optimizer": meta})
    groups, meta_back = load_checkpoint(tmp_path / "ck")
    net2 = torch.nn.Linear(3, 2)
    net2.load_state_dict(groups["net"])
    opt2 = torch.optim.Adam(net2.parameters(), lr=1.0)
    optimizer_from_flat(opt2, groups["opt"], meta_back["optimizer"])
    for a, b in zip(opt.state.values(), opt2.state.values()):
        assert torch.equal(a["exp_avg"], b["exp_avg"])
    assert opt2.param_groups[0]["lr"] == 1e-2
    assert meta_back["step"] == 1


def test_progress_jsonl_lines_are_json():
    out = io.StringIO()
    progress = Progress("jsonl", stdout=out, min_interval_s=0.0)
    progress.device("cpu", "cpu (2 threads)", "fp32")
    with progress.stage("train", total=3) as stage:
        for step in range(1, 4):
            stage.update(step, loss=float("nan") if step == 2 else 0.5, dice=0.1)
    progress.log("hello")
    progress.result(model="/x")
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [e["event"] for e in events] == ["device", "progress", "progress", "progress", "log", "result"]
    assert events[2]["loss"] is None and events[3]["step"] == 3 and events[3]["total"] == 3
    assert events[3]["eta_s"] == 0.0 and events[3]["metrics"] == {"dice": 0.1}
