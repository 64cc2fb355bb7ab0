"""``torchrun --nproc_per_node=2 -m distillseg lap train`` on the CPU (gloo): two ranks train one model (DDP with a
DistributedSampler), rank 0 alone reports and writes the bundle."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from distillseg.lap.model_bundle import load_lap_model
from distillseg.lap.synthetic_scenes import write_demo_data

REPO = Path(__file__).resolve().parents[2]


def test_two_process_cpu_training(tmp_path):
    write_demo_data(tmp_path / "demo", patients=2, frames_per_patient=3, size=(72, 88), seed=5)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               "-m", "distillseg", "lap", "train", "--data", str(tmp_path / "demo"), "--classes", "liver,colon",
               "--out", str(tmp_path / "m"), "--size", "64", "64", "--iterations", "3", "--batch-size", "4",
               "--diffusion-iterations", "2", "--device", "cpu", "--threads", "1", "--progress", "jsonl"]
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    events = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert [e["event"] for e in events].count("result") == 1          # rank 0 alone speaks
    assert "rank 0 of 2" in next(e for e in events if e["event"] == "device")["description"]
    model = load_lap_model(tmp_path / "m")
    assert model.registry.names == ["liver", "colon"] and model.history[0]["world_size"] == 2
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == ["demo", "m"]
