"""``oneshot train --augmenter-from MODEL``: a training that changes only the student starts from an earlier
model's trained augmenter, and ends exactly where training that augmenter again would have ended; a source that
does not fit (another atlas, another working grid, not a OneShotSeg model, the output itself) is refused in one
sentence before anything is written."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from distillseg.common.bundle import load_bundle
from distillseg.common.volume_io import read_image, write_image
from tiny_models import ONESHOT_TINY, checked, distillseg, lap_fixture, oneshot_fixture


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return oneshot_fixture(tmp_path_factory)


def _train(tiny, out, *extra, atlas=None):
    case = tiny.case
    return distillseg("oneshot", "train", "--atlas", atlas or case["atlas"], "--atlas-labels", case["atlas_labels"],
                      "--unlabeled", *case["scans"], "--out", out, *ONESHOT_TINY, "--progress", "none", *extra)


def _weights(model, name):
    return load_bundle(model, "oneshot").load_weights(name)


def test_a_student_variant_on_a_borrowed_augmenter_equals_its_own_training(tiny, tmp_path):
    own, borrowed = tmp_path / "own", tmp_path / "borrowed"
    checked(_train(tiny, own, "--hint-weight", 1))
    checked(_train(tiny, borrowed, "--hint-weight", 1, "--augmenter-from", tiny.model))
    for name in ("augmenter", "student"):
        mine, theirs = _weights(own, name), _weights(borrowed, name)
        assert all(torch.equal(mine[k], theirs[k]) for k in mine), name
    source = load_bundle(tiny.model, "oneshot").manifest
    training = load_bundle(borrowed, "oneshot").manifest["training"]
    record = training["augmenter_from"]
    assert record["augmenter_sha256"] == source["weights"]["augmenter"]["sha256"]
    assert record["inputs"] == source["training"]["inputs"] and record["seconds"] > 0
    assert "augmenter" not in training["seconds"], "no augmenter step ran in this training"
    assert training["options"]["augmenter"] == source["training"]["options"]["augmenter"]
    assert training["options"]["distill"]["hint_weight"] == 1
    assert training["inputs"][-1]["role"] == "augmenter source"
    assert str(tiny.model.parent) not in json.dumps(training), "a model keeps no path of its inputs"
    # A chain names the training that made the weights, not the model in between.
    again = tmp_path / "again"
    checked(_train(tiny, again, "--hint-weight", 1, "--recon-weight", 0, "--augmenter-from", borrowed))
    assert load_bundle(again, "oneshot").manifest["training"]["augmenter_from"] == record


def _refused(result, fragment, *absent):
    assert result.returncode == 2, result.stderr[-2000:]
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith("error: ") and fragment in message, message
    for path in absent:
        assert not path.exists(), path


def test_an_augmenter_from_another_atlas_or_grid_is_refused(tiny, tmp_path):
    out = tmp_path / "out"
    checkpoint = tmp_path / "out.checkpoint"
    atlas = read_image(tiny.case["atlas"])
    brighter = write_image(tmp_path / "other atlas.nii.gz", np.asarray(atlas.array) ** 2, atlas.affine)
    _refused(_train(tiny, out, "--augmenter-from", tiny.model, atlas=brighter), "another atlas image", out,
             checkpoint)
    # a later --spacing wins over ONESHOT_TINY's "atlas"
    result = _train(tiny, out, "--spacing", "3", "--augmenter-from", tiny.model)
    _refused(result, "working grid", out, checkpoint)


def test_bad_augmenter_sources_are_refused_before_any_work(tiny, tmp_path_factory, tmp_path):
    lap = lap_fixture(tmp_path_factory)
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "out"
    cases = [(empty, "manifest.json"), (lap.model, "IncrementalLap"),
             (tmp_path / "missing", "missing")]
    for source, fragment in cases:
        _refused(_train(tiny, out, "--augmenter-from", source), fragment, out)
    # The output may neither be the source nor lie inside it: the source stays as it was.
    copy = shutil.copytree(tiny.model, tmp_path / "source copy")
    before = sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in copy.iterdir())
    _refused(_train(tiny, copy, "--augmenter-from", copy), "", tmp_path / "source copy.checkpoint")
    _refused(_train(tiny, copy / "inside", "--augmenter-from", copy), "", copy / "inside")
    assert sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in copy.iterdir()) == before


def test_a_source_whose_augmenter_options_are_missing_or_mistyped_is_refused(tiny, tmp_path):
    out = tmp_path / "out"
    for change, fragment in [(lambda o: o.pop("window"), "does not record how its augmenter was trained"),
                             (lambda o: o.update(contrastive_weight="strong"), "wrong type (contrastive_weight)"),
                             (lambda o: o.update(smooth_weight="strong"), "smooth_weight")]:
        source = shutil.copytree(tiny.model, tmp_path / f"edited {fragment[:4]}")
        manifest = json.loads((source / "manifest.json").read_text())
        change(manifest["training"]["options"]["augmenter"])
        (source / "manifest.json").write_text(json.dumps(manifest))
        _refused(_train(tiny, out, "--augmenter-from", source), fragment, out)


def test_a_source_from_before_the_refinement_smoothness_lends_its_augmenter(tiny, tmp_path):
    """The refinement runs in the borrowing training, so its smoothness is this training's own, and a source whose
    manifest predates that option is still a source."""
    source = shutil.copytree(tiny.model, tmp_path / "older source")
    manifest = json.loads((source / "manifest.json").read_text())
    assert manifest["training"]["options"]["augmenter"].pop("refine_smooth_weight") is None
    (source / "manifest.json").write_text(json.dumps(manifest))
    out = tmp_path / "out"
    checked(_train(tiny, out, "--refine-smooth-weight", 0.25, "--augmenter-from", source))
    options = load_bundle(out, "oneshot").manifest["training"]["options"]["augmenter"]
    assert options["refine_smooth_weight"] == 0.25 and options["smooth_weight"] == 1.0
    assert all(torch.equal(a, b) for a, b in zip(_weights(source, "augmenter").values(),
                                                 _weights(out, "augmenter").values()))
