"""Several machines: two ``torchrun`` "nodes" on 127.0.0.1 (one process each, gloo, static rendezvous on rank 0's
address, as ``docs/scale.md`` launches them) train one model into one shared folder: one bundle, written by rank 0,
with one sample per node by default. Verbs that do not share work run on rank 0 alone (the others end at once), so
they neither take the same output lock twice nor print everything twice."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

from conftest import REPO
from distillseg.common.bundle import load_bundle
from tiny_models import lap_fixture, oneshot_fixture

ENV = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
TINY = ["--iterations", "2", "--augmenter-iterations", "1", "--refine-iterations", "1", "--spacing", "atlas",
        "--device", "cpu", "--threads", "1", "--no-prealign", "--checkpoint-every", "1", "--progress", "jsonl"]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _nodes(arguments: list, nodes: int = 2) -> list[subprocess.CompletedProcess]:
    """``torchrun --nnodes N --node-rank k --master-addr 127.0.0.1 …`` started once per node, waited for."""
    port = _free_port()
    launched = [subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--nnodes", str(nodes), "--node-rank", str(rank),
         "--nproc-per-node", "1", "--master-addr", "127.0.0.1", "--master-port", str(port),
         "-m", "distillseg", *map(str, arguments)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV, cwd=REPO) for rank in range(nodes)]
    finished = []
    for process in launched:
        out, err = process.communicate(timeout=600)
        finished.append(subprocess.CompletedProcess(process.args, process.returncode, out, err))
    return finished


def _events(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def test_two_nodes_train_one_model_into_a_shared_folder(tmp_path_factory, tmp_path):
    tiny = oneshot_fixture(tmp_path_factory)
    shared = tmp_path / "shared filesystem"
    train = ["oneshot", "train", "--atlas", tiny.case["atlas"], "--atlas-labels", tiny.case["atlas_labels"],
             "--unlabeled", *tiny.case["scans"], "--out", shared / "model", *TINY]
    node0, node1 = _nodes(train)
    assert node0.returncode == node1.returncode == 0, node0.stderr[-3000:] + node1.stderr[-3000:]
    assert [e["event"] for e in _events(node0.stdout)].count("result") == 1 and not _events(node1.stdout)
    bundle = load_bundle(shared / "model")
    assert bundle.manifest["training"]["processes"] == 2
    assert bundle.manifest["training"]["options"]["distill"]["batch_size"] == 2  # one sample per node
    # Rank 0 wrote the checkpoints beside the bundle on the shared path; the finished training removed them.
    assert sorted(p.name for p in shared.iterdir() if not p.name.startswith(".")) == ["model"]


def test_verbs_that_do_not_share_work_run_on_rank_0_alone(tmp_path_factory, tmp_path):
    lap = lap_fixture(tmp_path_factory)
    restore = ["lap", "restore", "--model", lap.model, "--step", 0, "--out", tmp_path / "restored",
               "--progress", "jsonl"]  # two writers would take the same output lock
    evaluate = ["lap", "evaluate", "--model", lap.model, "--data", lap.demo, "--report", tmp_path / "report.json",
                "--device", "cpu", "--progress", "jsonl"]  # a process group would wait for the ranks that left
    for verb, kinds in ((restore, ["result"]), (evaluate, ["device", "progress", "result"])):
        node0, node1 = _nodes(verb)
        assert node0.returncode == node1.returncode == 0, node0.stdout + node0.stderr[-2000:] + node1.stderr[-2000:]
        assert sorted(set(e["event"] for e in _events(node0.stdout))) == kinds and node1.stdout == ""
        device = next((e for e in _events(node0.stdout) if e["event"] == "device"), {})
        assert "rank" not in device.get("description", "")  # rank 0 ran as a world of one
    assert (tmp_path / "restored" / "manifest.json").is_file() and (tmp_path / "report.json").is_file()
