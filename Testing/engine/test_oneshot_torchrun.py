"""``torchrun --nproc_per_node=2`` on the CPU (gloo) trains the same model as one process with the same global
batch, writes one bundle from rank 0, and shares segmentation inputs between the ranks."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO
from distillseg.common.bundle import load_bundle
from synthetic_volumes import write_case

ARGS = ["--iterations", "3", "--augmenter-iterations", "2", "--spacing", "atlas", "--device", "cpu", "--threads", "1",
        "--precision", "fp32", "--batch-size", "2", "--batch-pairs", "2", "--no-prealign", "--progress", "jsonl"]


def _distillseg(*args, processes: int = 1) -> subprocess.CompletedProcess:
    launcher = [sys.executable, "-m", "distillseg"] if processes == 1 else [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes),
        "-m", "distillseg"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    result = subprocess.run([*launcher, *map(str, args)], capture_output=True, text=True, env=env, cwd=REPO,
                            timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


@pytest.mark.slow
def test_two_cpu_processes_match_one_process(tmp_path):
    case = write_case(tmp_path / "data", shape=(32, 32, 32), unlabeled=2)
    common = ["oneshot", "train", "--atlas", case["atlas"], "--atlas-labels", case["atlas_labels"],
              "--unlabeled", *case["scans"], *ARGS]
    _distillseg(*common, "--out", tmp_path / "one")
    two = _distillseg(*common, "--out", tmp_path / "two", processes=2)
    assert two.stdout.count('"event": "result"') == 1, "only rank 0 reports"
    one, two_bundle = load_bundle(tmp_path / "one"), load_bundle(tmp_path / "two")
    assert two_bundle.manifest["training"]["processes"] == 2
    # The augmenter (small lr, NT-Xent gathered across ranks) must match one process to float precision.
    one_weights, two_weights = one.load_weights("augmenter"), two_bundle.load_weights("augmenter")
    for key, value in one_weights.items():
        np.testing.assert_allclose(two_weights[key].numpy(), value.numpy(), rtol=1e-4, atol=1e-5, err_msg=key)
    # The student's Adam steps turn noise-level gradients (e.g. conv biases cancelled by InstanceNorm) into ±lr
    # updates, so compare what the two runs learned: their final distillation losses.
    final_one = one.manifest["training"]["curves"]["distill"][-1]
    final_two = two_bundle.manifest["training"]["curves"]["distill"][-1]
    assert final_one[0] == final_two[0] == 3
    assert abs(final_one[1] - final_two[1]) < 0.05 * abs(final_one[1])

    outputs = tmp_path / "segmentations"
    _distillseg("oneshot", "segment", "--model", tmp_path / "two", "--input", *case["scans"], "--output", outputs,
                "--device", "cpu", processes=2)
    assert sorted(p.name for p in outputs.iterdir()) == ["scan0_seg.nii.gz", "scan1_seg.nii.gz"]
