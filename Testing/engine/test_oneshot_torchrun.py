"""``torchrun --nproc_per_node=2`` on the CPU (gloo) trains, with the default batch options (one sample per process),
the same model as one process given that global batch, writes one bundle from rank 0, and shares segmentation
inputs between the ranks; a batch too small for the processes is refused in one sentence naming the option."""

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
        "--precision", "fp32", "--no-prealign", "--progress", "jsonl"]
BATCHES = ["--batch-size", "2", "--batch-pairs", "2"]  # what two processes take by default


def _distillseg(*args, processes: int = 1, check: bool = True) -> subprocess.CompletedProcess:
    launcher = [sys.executable, "-m", "distillseg"] if processes == 1 else [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes),
        "-m", "distillseg"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    result = subprocess.run([*launcher, *map(str, args)], capture_output=True, text=True, env=env, cwd=REPO,
                            timeout=600)
    assert result.returncode == 0 or not check, result.stdout + result.stderr
    return result


@pytest.mark.slow
def test_two_cpu_processes_match_one_process(tmp_path):
    case = write_case(tmp_path / "data", shape=(32, 32, 32), unlabeled=2)
    common = ["oneshot", "train", "--atlas", case["atlas"], "--atlas-labels", case["atlas_labels"],
              "--unlabeled", *case["scans"], *ARGS]
    _distillseg(*common, *BATCHES, "--out", tmp_path / "one")
    two = _distillseg(*common, "--out", tmp_path / "two", processes=2)
    assert two.stdout.count('"event": "result"') == 1, "only rank 0 reports"
    one, two_bundle = load_bundle(tmp_path / "one"), load_bundle(tmp_path / "two")
    assert two_bundle.manifest["training"]["processes"] == 2
    settled = two_bundle.manifest["training"]["options"]
    assert settled["distill"]["batch_size"] == settled["augmenter"]["batch_pairs"] == 2
    # The augmenter (small lr, NT-Xent gathered across ranks) must match one process to float precision.
    one_weights, two_weights = one.load_weights("augmenter"), two_bundle.load_weights("augmenter")
    for key, value in one_weights.items():
        np.testing.assert_allclose(two_weights[key].numpy(), value.numpy(), rtol=1e-4, atol=1e-5, err_msg=key)
    # The student's Adam steps turn noise-level gradients (e.g. conv biases cancelled by InstanceNorm) into ±lr
    # updates, so compare what the two runs learned: their final distillation losses, the two-process one being the
    # global batch's (rank 0's own sample alone was 10 % off here).
    final_one = one.manifest["training"]["curves"]["distill"][-1]
    final_two = two_bundle.manifest["training"]["curves"]["distill"][-1]
    assert final_one[0] == final_two[0] == 3
    assert abs(final_one[1] - final_two[1]) < 0.01 * abs(final_one[1])

    outputs = tmp_path / "segmentations"
    _distillseg("oneshot", "segment", "--model", tmp_path / "two", "--input", *case["scans"], "--output", outputs,
                "--device", "cpu", processes=2)
    assert sorted(p.name for p in outputs.iterdir()) == ["scan0_seg.nii.gz", "scan1_seg.nii.gz"]


def test_a_batch_smaller_than_the_processes_is_refused(tmp_path):
    case = write_case(tmp_path / "data", shape=(24, 24, 24), unlabeled=1)
    refused = _distillseg("oneshot", "train", "--atlas", case["atlas"], "--atlas-labels", case["atlas_labels"],
                          "--unlabeled", *case["scans"], *ARGS, "--batch-size", "1", "--out", tmp_path / "m",
                          processes=2, check=False)
    assert refused.returncode != 0
    assert ('{"event": "error", "message": "--batch-size 1 leaves some of the 2 torchrun processes without a sample; '
            'give --batch-size 2 or more, or leave it out (then each process gets at least one)."}') in refused.stdout
    assert "torch.cat" not in refused.stderr  # the crash it replaces: rank 1's empty batch
    assert not (tmp_path / "m").exists()
