"""The GPU check runs end to end in its CPU smoke mode (so it does not rot until a GPU runs it); the speed report's
warm-worker section and the pre-alignment report state speed-ups, accuracy differences and targets from the
measured figures."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from benchmarks import prealign_accuracy
from benchmarks.harness.report import about, module_command
from benchmarks.harness.speed_warm import SYN_1MM, SYN_2MM, warm_section
from conftest import ENGINE_THREADS, REPO


@pytest.mark.slow
def test_gpu_check_smoke_mode_runs_every_step_on_the_cpu(shared_data, tmp_path):
    done = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_check.sh"), "--smoke", "--data", str(shared_data),
                           "--work", str(tmp_path), "--threads", ENGINE_THREADS], capture_output=True, text=True,
                          cwd=tmp_path, timeout=1200,
                          env={**os.environ, "PYTHON": sys.executable, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((tmp_path / "report" / "results.json").read_text())
    assert result["settings"]["smoke"] and not result["skipped"]
    assert [r["resolution"] for r in result["train"]] == ["2 mm", "1 mm"] and all(r["ok"] for r in result["train"])
    assert all(0 <= r["mean_dice"] <= 1 for r in result["train"])
    assert [r["case"] for r in result["segment"]] == ["brain", "CT"]
    assert all(r["warm_seconds"] > 0 and r["worker_peak_rss_mb"] > 0 for r in result["segment"])
    assert [r["launcher"] for r in result["ddp"]] == ["one process (the 2 mm training)", "torchrun"]
    assert all(r["ok"] and r["samples_per_s"] for r in result["ddp"])
    report = (tmp_path / "report" / "report.md").read_text()
    assert "SMOKE RUN on the CPU" in report and "Not run" not in report


def test_warm_section_states_speedups_and_targets():
    warm = {"input_shape": [160, 192, 224], "labels_identical": True, "worker_peak_rss_mb": 1500,
            "cold": {"seconds": 10.0, "in_process_seconds": 6.0, "peak_tree_rss_mb": 1400},
            "worker_first": {"seconds": 9.0}, "worker_second": {"seconds": 4.0},
            "ants": {SYN_2MM: {"seconds": 30.0, "registration_seconds": 25.0, "peak_tree_rss_mb": 800},
                     SYN_1MM: {"seconds": 50.0, "registration_seconds": 45.0, "peak_tree_rss_mb": 1600}}}
    text = "\n".join(warm_section(warm))
    assert "identical to the cold command's: **yes**" in text
    assert f"vs {SYN_2MM}: 7.5× faster (target ≥ 5×: met); against its registration alone 6.2×" in text
    assert f"vs {SYN_1MM}: 12.5× faster (target ≥ 10×: met)" in text
    warm["worker_second"]["seconds"], warm["labels_identical"] = 8.0, False
    text = "\n".join(warm_section(warm))
    assert "**NO**" in text and "3.8× faster (target ≥ 5×: MISSED by 1.2×)" in text


def test_prealign_report_compares_the_versions(tmp_path):
    rows = [{"version": version, "seed": seed, "case": case, "seconds": seconds, "dice": dice,
             **({"error_mean_mm": error, "error_max_mm": 2 * error} if case.startswith("OASIS") else {})}
            for version, seconds, dice, error in (("before (abc1234)", 2.0, 0.55, 0.4), ("now", 0.5, 0.56, 0.3))
            for seed in (0, 1) for case in ("vxm", "OASIS, header moved 10°")]
    result = {"about": about(module_command("benchmarks.prealign_accuracy")), "threads": 2, "seeds": [0, 1],
              "rows": rows}
    prealign_accuracy.write_report(result, tmp_path)
    report = (tmp_path / "report.md").read_text()
    assert "- cost: 4.0× less time (0.50 s vs 2.00 s)" in report
    assert "- error against the true map: -0.100 mm" in report and "vxm cases: +0.0100" in report
    assert "| OASIS, header moved 10° | now | 0.50 s | 0.30 mm | 0.60 mm | 0.5600 ± 0.0000 |" in report
