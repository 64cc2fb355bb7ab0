"""BIDS in and BIDS-Derivatives out, through the real CLI: ``oneshot segment --bids`` finds the T1w scans of a
generated dataset (with and without sessions, other files beside them), writes ``*_dseg.nii.gz`` at their places in
``derivatives/oneshotseg`` with ``dseg.tsv`` and ``dataset_description.json``, and gives the same labels as
``segment --input``; ``train --unlabeled-bids`` takes its scans from a dataset. Folders that are not datasets,
datasets without T1w scans and ``--format`` with ``--bids`` are rows of the bad-input matrix
(``test_bad_input_matrix.py``)."""

from __future__ import annotations

import csv
import json
import shutil

import nibabel as nib
import numpy as np
import pytest

from tiny_models import ONESHOT_TINY, checked, distillseg, oneshot_fixture

SCANS = ("sub-01/anat/sub-01_T1w.nii.gz", "sub-02/ses-1/anat/sub-02_ses-1_T1w.nii.gz",
         "sub-02/ses-2/anat/sub-02_ses-2_run-1_T1w.nii.gz")


@pytest.fixture
def dataset(tmp_path_factory, tmp_path):
    """A small BIDS dataset of the tiny case's scans, a T2w and a JSON sidecar that must be left alone."""
    one = oneshot_fixture(tmp_path_factory)
    root = tmp_path / "my study"
    for relative in SCANS:
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(one.case["scans"][0], root / relative)
    shutil.copy(one.case["atlas"], root / "sub-01/anat/sub-01_T2w.nii.gz")
    (root / "sub-01/anat/sub-01_T1w.json").write_text("{}")
    (root / "dataset_description.json").write_text(json.dumps({"Name": "test", "BIDSVersion": "1.9.0"}))
    return one, root


def _labels(path) -> np.ndarray:
    return np.asarray(nib.load(path).dataobj)


def test_segment_writes_a_derivative_dataset(dataset, tmp_path):
    one, root = dataset
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    result = checked(distillseg("oneshot", "segment", "--model", one.model, "--bids", root, "--device", "cpu",
                                "--json"))
    derivatives = root / "derivatives" / "oneshotseg"
    expected = [derivatives / r.replace("_T1w.nii.gz", "_dseg.nii.gz") for r in SCANS]
    assert sorted(json.loads(result.stdout)["outputs"]) == sorted(map(str, expected + [
        derivatives / "dataset_description.json", derivatives / "dseg.tsv"]))
    reference = tmp_path / "reference.nii.gz"
    checked(distillseg("oneshot", "segment", "--model", one.model, "--input", one.case["scans"][0], "--output",
                       reference, "--device", "cpu"))
    for path in expected:
        assert np.array_equal(_labels(path), _labels(reference))
        assert np.allclose(nib.load(path).affine, nib.load(one.case["scans"][0]).affine)
    description = json.loads((derivatives / "dataset_description.json").read_text())
    assert description["DatasetType"] == "derivative" and description["GeneratedBy"][0]["Name"] == "OneShotSeg"
    rows = list(csv.DictReader((derivatives / "dseg.tsv").open(), delimiter="\t"))
    manifest = json.loads((one.model / "manifest.json").read_text())
    assert [(int(r["index"]), r["name"]) for r in rows[1:]] == [(e["value"], e["name"]) for e in manifest["labels"]]
    assert all(p.read_bytes() == data for p, data in before.items())  # the raw dataset is untouched
    # Run again: the engine's own derivatives are replaced; a file of someone else's in the way is not.
    checked(distillseg("oneshot", "segment", "--model", one.model, "--bids", root, "--device", "cpu"))
    expected[0].write_bytes(b"not ours")
    again = distillseg("oneshot", "segment", "--model", one.model, "--bids", root, "--device", "cpu")
    assert again.returncode == 2 and str(expected[0]) in again.stderr.splitlines()[-1]
    assert expected[0].read_bytes() == b"not ours"


def test_derivatives_elsewhere_and_training_from_a_dataset(dataset, tmp_path):
    one, root = dataset
    out = tmp_path / "derived"
    checked(distillseg("oneshot", "segment", "--model", one.model, "--bids", root, "--output", out,
                       "--device", "cpu", "--progress", "none"))
    assert (out / "sub-02/ses-2/anat/sub-02_ses-2_run-1_dseg.nii.gz").is_file()
    assert not (root / "derivatives").exists()
    model = tmp_path / "from bids"
    checked(distillseg("oneshot", "train", "--atlas", one.case["atlas"], "--atlas-labels", one.case["atlas_labels"],
                       "--unlabeled-bids", root, "--out", model, *ONESHOT_TINY, "--progress", "none"))
    roles = [i["role"] for i in json.loads((model / "manifest.json").read_text())["training"]["inputs"]]
    assert roles.count("unlabelled") == len(SCANS)
