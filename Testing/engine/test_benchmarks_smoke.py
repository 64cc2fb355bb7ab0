"""The benchmark scripts import, measure a child process, score label files and write their reports (markdown,
JSON, PNG) from small fake results, so a broken benchmark fails here rather than after hours of computing.

``benchmarks`` is a package in the repository root (on pytest's path through ``pythonpath``), imported as the
scripts run: ``python -m benchmarks.<name>``."""

from __future__ import annotations

import json
import sys

import nibabel as nib
import numpy as np
import pytest

from benchmarks import (lap_incremental, lap_validation, oneshot_brain, oneshot_spine, reliability_report,
                        speed_scale)
from benchmarks.harness import estimates, lap_runs, oneshot, speed_lap, speed_report
from benchmarks.harness.lap_protocols import PROTOCOLS
from benchmarks.harness.paths import REPO, RESULTS, SHARED, shown
from benchmarks.harness.report import about, module_command
from benchmarks.harness.run import CommandFailed, Measured, run_measured


def _case(dices: list[float], names=None) -> dict:
    keys = names or [str(v) for v in range(1, len(dices) + 1)]
    return {"case": "c0", "structures": {k: {"dice": d, "hd95": 2.0 * (1 - d), "name": f"s{k}"}
                                         for k, d in zip(keys, dices)}}


def _method(name: str, kind: str, dices: list[float], seconds: float | None, resolution=2.0, train=False,
            settings=None) -> dict:
    method = {"name": name, "kind": kind, "resolution_mm": resolution, "cases": [_case(dices)],
              "segment": None if seconds is None else {
                  "seconds_per_volume": seconds, "peak_rss_mb": 900.0, "registration_seconds": seconds / 2,
                  "in_process_seconds_per_volume": seconds / 3},
              "train": None}
    if kind == "ours":
        method["max_dice_difference_segment_vs_evaluate"] = 0.0
    if train:
        method["train"] = {"seconds": 600.0, "peak_rss_mb": 3000, "stage_seconds": {"augmenter": 100, "distill": 400},
                           "working_grid": [80, 96, 112], "resolution_mm": 2.0, "precision": "torch.bfloat16",
                           "augmenter_iterations": 2, "iterations": 3, "augmenter_step_s": 3.0,
                           "distill_step_s": 4.0}
    if kind == "peer":
        method["settings"] = settings or {"transform": "SyN"}
        method["reused"] = False
    return method


def _oneshot_methods(spacing: float) -> list[dict]:
    return [
        _method("no registration (floor)", "floor", [0.5, 0.4, 0.6], None, resolution=None),
        _method(f"ANTs SyN defaults @ {spacing:g} mm", "peer", [0.6, 0.7, 0.65], 40.0, spacing),
        _method(f"ANTs SyN (40, 20) @ {spacing:g} mm", "peer", [0.7, 0.72, 0.7], 66.0, spacing),
        _method("ANTs SyN defaults @ 1 mm", "peer", [0.72, 0.7, 0.73], 300.0, 1.0),
        _method("ours: full method", "ours", [0.75, 0.7, 0.74], 6.0, spacing, train=True),
        _method("ours: augmenter alone", "ours", [0.7, 0.69, 0.7], 5.0, spacing),
    ]


def test_brain_report_is_written_from_fake_results(tmp_path):
    result = {"about": about(module_command("benchmarks.oneshot_brain", "--smoke")),
              "settings": {"spacing": 2.0, "threads": 2, "smoke": True, "seed": 0, "augmenter_iterations": 2,
                           "iterations": 3, "train_options": [], "budget_is_default": False},
              "data": {"atlas": ["a.nii.gz", "a_seg.nii.gz"], "unlabeled": ["u.nii.gz"], "tests": [["vxm", "t"]],
                       "mni152": False},
              "structures": [1, 2, 3], "methods": _oneshot_methods(2.0), "total_seconds": 100.0}
    oneshot_brain.write_report(result, tmp_path)
    report = (tmp_path / "report.md").read_text()
    assert "SMOKE RUN" in report and "ANTs SyN (40, 20) @ 2 mm" in report
    assert "segment speed-up vs that SyN: 11.0×" in report  # 66 s / 6 s
    targets = report.split("## Targets")[1].split("##")[0]
    assert "vs augmenter alone: +0.033 Dice (met)" in targets and "MISSED" not in targets
    assert (tmp_path / "dice_boxplot.png").stat().st_size > 1000
    assert json.loads((tmp_path / "results.json").read_text())["settings"]["spacing"] == 2.0


def test_spine_report_says_it_is_synthetic(tmp_path):
    result = {"about": about(module_command("benchmarks.oneshot_spine")), "native_mm": 2.0,
              "data": {"image": "spine.nii.gz", "labels": "spine_labels.nii.gz"},
              "settings": {"threads": 2, "smoke": False, "seed": 0, "unlabeled_count": 4, "test_count": 3,
                           "augmenter_iterations": None, "iterations": None, "train_options": [],
                           "budget_is_default": True},
              "structures": [1, 2, 3], "methods": _oneshot_methods(2.0)[:3] + _oneshot_methods(2.0)[4:],
              "total_seconds": 50.0}
    oneshot_spine.write_report(result, tmp_path)
    report = (tmp_path / "report.md").read_text()
    assert "synthetic-deformation self-consistency test, not an independent test set" in report
    assert "CLI defaults" in report
    assert (tmp_path / "dice_boxplot.png").is_file()


def test_speed_report_labels_gpu_figures_as_estimates(tmp_path):
    saved = {"fp32": estimates.saved_activation_bytes(3, (32, 32, 16)),
             "bf16_checkpointing": estimates.saved_activation_bytes(3, (32, 32, 16), True, True)}
    assert saved["bf16_checkpointing"] < saved["fp32"] / 2
    figures = {"grid": [32, 32, 16], "classes": 3, "student_parameters": 1000, "teacher_parameters": 1000,
               "student_forward_flops": 10**9, "distill_step_flops": 3 * 10**9, "inference_traffic_bytes_bf16": 10**8,
               "distill_saved_bytes": {**saved, "bf16": saved["fp32"], "fp32_checkpointing": saved["fp32"]},
               "augmenter_saved_bytes": {"fp32": 10**7, "bf16": 5 * 10**6}, "optimizer_state_bytes": 10**7}
    segment = [{"case": case, "input_shape": shape, "working_grid": shape, "mode": mode, "precision": "bf16",
                "seconds": seconds, "in_process_seconds": seconds / 2, "peak_rss_mb": 1000.0 * seconds,
                "ok": True, "error": None, "device": "cpu (2 threads)"}
               for case, shape, seconds in (("brain 2 mm", [80, 96, 112], 3.0), ("brain 1 mm", [160, 192, 224], 9.0),
                                            ("CT 512×512×300", [512, 512, 300], 5.0))
               for mode in ("whole grid", "sliding window 96×96×96", "budget --max-memory 6G")]
    train = [{"resolution": "1 mm", "precision": "fp32", "checkpointing": False, "ok": False,
              "error": "not run: extrapolated", "extrapolated_peak_gb": 30.0},
             {"resolution": "2 mm", "precision": "bf16", "checkpointing": True, "ok": True, "error": None,
              "working_grid": [80, 96, 112], "augmenter_step_s": None, "distill_step_s": 4.0,
              "stage_peaks_mb": {"distill": 3000.0}, "peak_rss_mb": 3100.0, "device": "cpu (2 threads)"}]
    ddp = [{"processes": p, "threads_each": 2 // p, "backend": "gloo", "augmenter_step_s": 3.0,
            "augmenter_pairs_per_s": 0.6, "distill_step_s": 4.0, "distill_samples_per_s": 0.5,
            "peak_tree_rss_mb": 4000.0, "ok": True, "error": None} for p in (1, 2)]
    options = {"train": {"--max-memory": False}, "segment": {"--max-memory": False}}
    lap = [{"name": "lap train (3 structures, batch 8)", "seconds": 30.0, "peak_rss_mb": 1500.0, "ok": True,
            "error": None, "segmenter_step_s": 1.25, "diffusion_step_s": 0.5},
           {"name": "lap sample --n 32 (DDIM, 50 steps)", "seconds": 20.0, "peak_rss_mb": 900.0, "ok": True,
            "error": None, "sample_frames_per_s": 1.5},
           {"name": "lap segment (8 frames)", "seconds": 9.0, "peak_rss_mb": 800.0, "ok": False,
            "error": "frames: no frame"}]
    figures["lap"] = speed_lap.lap_network_figures()  # counted on the real networks
    assert 0 < figures["lap"]["segmenter_forward_flops"] and 0 < figures["lap"]["diffusion_forward_flops"]
    result = {"about": about(module_command("benchmarks.speed_scale")), "settings": {"smoke": False},
              "segment": segment, "train": train, "ddp": ddp, "lap": lap, "network_figures": figures,
              "engine_options": options}
    speed_scale.write_report(result, tmp_path)
    report = (tmp_path / "report.md").read_text()
    assert "| lap train (3 structures, batch 8) | segmenter step 1.25 s; diffusion step 0.50 s | 30.0 s |" in report
    assert "| 1.50 frames/s |" in report and "failed: frames: no frame" in report
    assert "GPU, ESTIMATES ON PAPER" in report and "per sampled frame" in report
    assert "ESTIMATES ON PAPER, NOT MEASUREMENTS" in report
    assert "within 6 GB RAM — met" in report  # the CT's 5 GB
    assert "| CT 512×512×300 | 6G | 4.88 GB | yes |" in report and "| brain 1 mm | 6G | 8.79 GB | NO |" in report
    assert "no `--max-memory`" in report
    assert (tmp_path / "segment_cost.png").stat().st_size > 1000


def test_speed_report_names_the_run_that_measured_each_part():
    segment_run = about(".venv/bin/python -m benchmarks.speed_scale --parts segment,gpu")
    previous = {"about": segment_run, "settings": {"parts": ["gpu", "segment"]}}  # a results file without provenance
    lap_run = about(".venv/bin/python -m benchmarks.speed_scale --parts lap")
    measured_by = {"segment": speed_scale.earlier_run(previous, "segment"),
                   "train": speed_scale.earlier_run(previous, "train"), "lap": speed_scale.run_of(lap_run)}
    lines = speed_report.provenance(measured_by)
    assert len(lines) == 3, lines
    assert lines[0].startswith("§1 segment cost: `.venv/bin/python -m benchmarks.speed_scale --parts segment,gpu` (")
    assert lines[1] == "§2 training steps: an earlier run of benchmarks.speed_scale (not recorded)"
    assert lines[2].startswith("§5 IncrementalLap: `.venv/bin/python -m benchmarks.speed_scale --parts lap` (")
    assert segment_run["date"] in lines[0] and "load " in lines[2]


def test_speed_rerun_of_some_parts_keeps_the_committed_figures_of_the_others():
    # A fresh clone has no scratch results: ``--parts`` starts from the committed report's own results file.
    committed = json.loads((RESULTS / "speed_scale" / "results.json").read_text())
    kept = speed_scale.kept_figures(committed)
    assert {"segment", "train", "ddp", "lap", "network_figures"} <= set(kept)
    assert kept["segment"] == committed["segment"] and set(kept["measured_by"]) == set(kept) - {"measured_by"}
    assert all(run["command"] for run in kept["measured_by"].values()), kept["measured_by"]


def test_measured_child_gives_time_memory_events_and_step_times():
    code = ("import json, time\nblock = bytearray(60 * 2**20)\n"
            "for step in (1, 2, 3):\n"
            "    print(json.dumps({'event': 'progress', 'stage': 'distill', 'step': step, 'elapsed_s': 0.2 * step}))\n"
            "    time.sleep(0.1)\n"
            "print(json.dumps({'event': 'result', 'seconds': [1.5]}))\n")
    run = run_measured([sys.executable, "-c", code])
    assert run.returncode == 0 and run.result["seconds"] == [1.5]
    assert run.peak_rss_mb > 60 and run.seconds > 0.3
    assert run.step_seconds("distill") == [0.2, 0.2]  # steps 2 and 3: the first step is left out
    assert run.median_step_seconds("distill") == pytest.approx(0.2) and run.median_step_seconds("augmenter") is None
    assert run.status() == {"ok": True, "error": None}
    failed = run_measured([sys.executable, "-c", "import sys; sys.exit('no such scan')"], check=False)
    assert failed.status() == {"ok": False, "error": "no such scan"}
    with pytest.raises(CommandFailed):
        run_measured([sys.executable, "-c", "import sys; sys.exit(3)"])


def test_score_file_maps_labels_before_scoring(tmp_path):
    truth = np.zeros((8, 8, 8), np.int16)
    truth[2:6, 2:6, 2:6] = 17
    predicted = np.zeros((8, 8, 8), np.uint8)
    predicted[2:6, 2:6, 2:4] = 3  # half the truth's cube, labelled with the model's value 3
    for name, array in (("truth", truth), ("pred", predicted)):
        nib.save(nib.Nifti1Image(array, np.eye(4)), tmp_path / f"{name}.nii.gz")
    scores = oneshot.score_file(tmp_path / "pred.nii.gz", tmp_path / "truth.nii.gz", [17], {17: "thalamus"},
                                       {3: 17})
    assert scores["17"]["dice"] == pytest.approx(2 * 32 / (64 + 32))
    assert scores["17"]["name"] == "thalamus"


def test_bad_input_report_counts_test_outcomes():
    engine, glue = "Testing/engine/test_bad_input_matrix.py", "Testing/mrml/test_bad_input_glue.py"
    cases = [
        {"nodeid": f"{engine}::test_bad_input[atlas-truncated]", "outcome": "passed", "group": "input files",
         "exit_code": 2, "message": "error: /tmp/pytest-of-ann/pytest-7/test_x0/atlas.nii.gz: cannot be read."},
        {"nodeid": f"{engine}::test_bad_input[labels-empty]", "outcome": "failed", "group": "input files",
         "exit_code": 1, "message": "Traceback | ..."},
        {"nodeid": f"{engine}::test_bad_input[segment-odd-paths]", "outcome": "passed", "group": "input files",
         "exit_code": 0, "message": ""},
        {"nodeid": f"{glue}::test_bad_input[import-truncated-zip]", "outcome": "skipped", "group": "models",
         "reason": "no zip"},
    ]
    rows = reliability_report.summarise(cases)
    assert {(r["suite"], r["group"]): (r["tried"], r["clean"], r["failed"], r["skipped"]) for r in rows} == {
        ("engine CLI", "input files"): (3, 2, 1, 0), ("Slicer glue", "models"): (0, 0, 0, 1)}
    report = reliability_report.markdown(cases, rows, {**about(module_command("benchmarks.reliability_report")),
                                                        "pytest_exit_code": 1, "seconds": 60.0})
    assert "**3 cases tried, 2 handled cleanly** (1 skipped)" in report
    assert "| engine CLI | input files | `atlas-truncated` | 2 | clean | error: <tmp>/atlas.nii.gz: cannot be read. |" \
        in report
    assert "| **failed** | Traceback \\| ... |" in report and "| 0 | clean | (works) |" in report


@pytest.mark.parametrize("bf16", [False, True])
def test_augmenter_memory_estimate_is_a_lower_bound_of_the_counted_tensors(bf16):
    from distillseg.oneshot.memory_plan import augmenter_training_bytes

    grid = (32, 32, 48)  # the engine refuses a grid on this estimate, so it must never exceed what a step keeps
    counted = estimates.augmenter_saved_bytes(grid, bf16=bf16, pairs=2)
    assert 0.8 * counted <= augmenter_training_bytes(32 * 32 * 48, bf16, 2) <= counted


def test_moved_header_rotates_and_shifts_in_world_space_only(tmp_path):
    from scipy.spatial.transform import Rotation

    from distillseg.common.volume_io import read_image

    affine = np.diag([-1.0, 1.0, 2.0, 1.0])
    affine[:3, 3] = [10.0, -20.0, 5.0]
    data = np.random.default_rng(0).random((6, 7, 8)).astype(np.float32)
    nib.save(nib.Nifti1Image(data, affine), tmp_path / "scan.nii.gz")
    moved = read_image(oneshot_brain.moved_header(tmp_path / "scan.nii.gz", tmp_path / "moved"))
    assert np.array_equal(moved.array, data)
    motion = moved.affine @ np.linalg.inv(affine)
    angle = np.degrees(Rotation.from_matrix(motion[:3, :3]).magnitude())
    assert angle == pytest.approx(oneshot_brain.MOVED_DEGREES, abs=1e-4)
    centre = affine[:3, :3] @ ((np.array(data.shape) - 1) / 2) + affine[:3, 3]
    shift = motion[:3, :3] @ centre + motion[:3, 3] - centre  # where the volume's centre goes
    assert np.linalg.norm(shift) == pytest.approx(oneshot_brain.MOVED_SHIFT_MM, abs=1e-3)


def test_lap_benchmark_reuses_only_a_bundle_made_with_the_same_options_and_strategy(tmp_path):
    out = tmp_path / "mib_step1"
    out.mkdir()
    # As the engine records them under --dice-weight 1 (entropy_thresholds is left out: a setting added later).
    settings = {"name": "mib", "unbiased_ce": True, "kd_weight": 10.0, "pod_weight": 0.0, "pseudo_labels": False,
                "replay": False, "contrastive_weight": 0.0, "dice_weight": 1.0, "temperature": 0.1,
                "confidence": 0.7}
    # As the engine records them: no paths (data, out and model are left out of a model's history).
    options = {"verb": "learn", "strategy": "mib", "iterations": 120, "size": [128, 160], "lr": 0.001,
               "patients": ["05", "14"], "dice_weight": 1.0}
    (out / "manifest.json").write_text(json.dumps({"history": [
        {"options": options, "strategy_settings": settings, "seconds": 42.5}]}))
    # Given as the benchmark types them: a comma list, a weight without its decimal point.
    args = ("--out", out, "--strategy", "mib", "--iterations", 120, "--size", 128, 160, "--lr", 1e-3, "--model",
            tmp_path / "base", "--data", tmp_path / "frames", "--patients", "05,14", "--dice-weight", 1)
    assert lap_runs.reusable_seconds("learn", args) == 42.5  # a setting added later is at its default
    assert lap_runs.reusable_seconds("train", args) is None
    assert lap_runs.reusable_seconds("learn", (*args[:4], "--iterations", 121, *args[6:])) is None
    # An option given twice counts with its last values, as the CLI reads it (a setting's own --size or --seed).
    assert lap_runs.reusable_seconds("learn", ("--size", 64, 64, *args)) == 42.5
    assert lap_runs.reusable_seconds("learn", (*args, "--iterations", 121)) is None
    assert lap_runs.reusable_seconds("learn", (*args, "--patients", "05,15")) is None
    assert lap_runs.reusable_seconds("learn", (*args, "--dice-weight", 0.5)) is None
    # The strategy's weights as the options set them: without --dice-weight 1 mib's Dice weight is 0.
    assert lap_runs.reusable_seconds("learn", args[:-2]) is None
    settings["kd_weight"] = 5.0
    (out / "manifest.json").write_text(json.dumps({"history": [
        {"options": {**options, "kd_weight": 5.0}, "strategy_settings": settings, "seconds": 42.5}]}))
    assert lap_runs.reusable_seconds("learn", args) is None
    assert lap_runs.reusable_seconds("learn", (*args, "--kd-weight", 5)) == 42.5
    settings["pseudo_labels"] = True
    (out / "manifest.json").write_text(json.dumps({"history": [
        {"options": {**options, "kd_weight": 5.0, "pseudo_labels": True}, "strategy_settings": settings,
         "seconds": 42.5}]}))
    assert lap_runs.reusable_seconds("learn", (*args, "--kd-weight", 5, "--pseudo-labels")) == 42.5
    assert lap_runs.reusable_seconds("learn", (*args, "--kd-weight", 5)) is None
    assert lap_runs.reusable_seconds("learn", (*args, "--kd-weight", 5, "--no-pseudo-labels")) is None
    assert lap_runs.reusable_seconds("learn", ("--out", tmp_path / "absent")) is None


def test_lap_validation_report_compares_the_variants_step_by_step():
    steps = PROTOCOLS["synthetic"]["steps"]
    seen = lambda k: [c for s in steps[: k + 1] for c in s["classes"]]  # noqa: E731
    curves = {"ours": [{c: 0.6 for c in seen(k)} for k in range(4)],
              "ours --no-pseudo-labels": [{c: 0.6 if k == 0 else 0.3 for c in seen(k)} for k in range(4)]}
    rows = {v: lap_runs.curve_rows(steps, c) for v, c in curves.items()}
    assert rows["ours --no-pseudo-labels"][1]["old_before_step"] == pytest.approx(0.6)
    report = lap_validation.markdown({"seed": 7, "smoke": False, "command": "x", "total_seconds": 600.0,
                                      "test_patients": ["14", "15", "16"], "curves": curves, "rows": rows,
                                      "seconds": {"ours": 120.0, "ours --no-pseudo-labels": 60.0}})
    assert "NOT laparoscopic data" in report and "seed 7" in report and "SMOKE" not in report
    assert "| ours | – / 60.0 / 60.0 | 60.0 / 60.0 / 60.0 |" in report
    assert "| ours --no-pseudo-labels | – / 60.0 / 60.0 | 30.0 / 30.0 / 30.0 |" in report
    assert "| vesicular_glands | 60.0 | 30.0 |" in report and "| 2.0 min |" in report


def test_lap_rates_come_from_throttled_progress_events():
    """The engine reports at most two progress events a second: rates span the first and last reported steps."""
    events = [{"event": "progress", "stage": "segment", "step": s, "elapsed_s": t}
              for s, t in ((1, 0.7), (2, 1.4), (6, 2.0), (8, 2.3))]
    events += [{"event": "progress", "stage": "sample", "step": s, "elapsed_s": t} for s, t in ((16, 30.0), (32, 40.0))]
    run = Measured(command=[], returncode=0, seconds=45.0, peak_rss_mb=1.0, peak_tree_rss_mb=1.0,
                              events=events)
    assert speed_lap._seconds_per_step(run, "segment", 1) == pytest.approx(1.6 / 7)
    assert speed_lap._frames_per_s(run, "sample") == pytest.approx(1.6)  # 16 frames in the second batch
    assert speed_lap._frames_per_s(run, "replay") is None


def test_lap_benchmark_writes_its_report_into_its_own_folder(tmp_path):
    steps = PROTOCOLS["synthetic"]["steps"]
    seen = lambda k: [c for s in steps[: k + 1] for c in s["classes"]]  # noqa: E731
    curves = {strategy: [{c: score for c in seen(k)} for k in range(4)]
              for strategy, score in (("ours", 0.6), ("finetune", 0.2), ("mib", 0.4), ("plop", 0.5))}
    result = {"protocol": "synthetic", "description": "fake scenes", "steps": steps, "curves": curves,
              "joint": {c: 0.7 for c in seen(3)}, "test_patients": ["14"], "reused": [],
              "seconds": {"base": 60.0, "ours": 60.0, "finetune": 30.0, "mib": 30.0, "plop": 30.0, "joint": 120.0}}
    lap_incremental.write_report(tmp_path, [result], {"synthetic": {"batch_size": 8}}, 2, 600.0, [],
                                 module_command("benchmarks.lap_incremental"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["iou_synthetic.png", "report.md", "results.json"]
    report = (tmp_path / "report.md").read_text()
    assert "Command: `.venv/bin/python -m benchmarks.lap_incremental`" in report
    assert "| ours | – / 60.0 / 60.0 | 60.0 / 60.0 / 60.0 |" in report and "![synthetic](iou_synthetic.png)" in report
    assert "| vesicular_glands | 60.0 | 20.0 | 40.0 | 50.0 | 70.0 |" in report
    assert json.loads((tmp_path / "results.json").read_text())["summaries"][0]["checks"]["ours_at_least_mib"]


def test_reports_name_paths_relative_to_the_checkout():
    assert shown(REPO / ".venv" / "bin" / "python") == ".venv/bin/python"
    assert shown(f"{SHARED}/data/labels.json:oasis_seg35_to_freesurfer") == "../shared/data/labels.json:" \
        "oasis_seg35_to_freesurfer"
    assert shown("/tmp/work/atlas.nii.gz") == "/tmp/work/atlas.nii.gz"
    run = run_measured([sys.executable, "-c", "print(1)"])
    assert run.summary()["command"].startswith(shown(sys.executable) + " -c ")
    # Committed reports never name the folder a checkout or its shared data happened to live in.
    for path in RESULTS.rglob("*"):
        if path.suffix in (".md", ".json"):
            text = path.read_text(encoding="utf-8")
            assert f"{REPO}/" not in text and f"{SHARED}/" not in text, path


def test_scripts_skip_without_data_and_rebuild_reports_from_the_raw_result(tmp_path, capsys):
    assert oneshot_brain.main(["--data", str(tmp_path / "none"), "--work", str(tmp_path / "brain")]) == 0
    assert "Skipped: no brain data" in capsys.readouterr().err
    work = tmp_path / "spine"
    work.mkdir()
    (work / "raw_result.json").write_text(json.dumps({
        "about": about(module_command("benchmarks.oneshot_spine")), "native_mm": 2.0,
        "data": {"image": "../shared/data/spine_ct/verse_spine_image704.nii.gz", "labels": "l.nii.gz"},
        "settings": {"threads": 2, "smoke": False, "seed": 0, "unlabeled_count": 4, "test_count": 3,
                     "augmenter_iterations": None, "iterations": None, "train_options": [], "budget_is_default": True},
        "structures": [1, 2, 3], "methods": _oneshot_methods(2.0)[:3] + _oneshot_methods(2.0)[4:],
        "total_seconds": 50.0}))
    assert oneshot_spine.main(["--work", str(work), "--out", str(tmp_path / "out"), "--report-only"]) == 0
    report = (tmp_path / "out" / "report.md").read_text()
    assert "**Data**: ../shared/data/spine_ct/verse_spine_image704.nii.gz" in report
    assert lap_incremental.main(["--work", str(tmp_path / "lap"), "--out", str(tmp_path / "lap_out"),
                                 "--report-only"]) == 0
    assert "*Skipped:* synthetic protocol: no results" in (tmp_path / "lap_out" / "report.md").read_text()


def test_ants_worker_runs_as_a_module_of_the_repository():
    from benchmarks.harness import ants

    assert ants.WORKER == "benchmarks.harness.ants"
    # The benchmarks start it as a child in the repository root; --help imports it without ANTs.
    assert run_measured([sys.executable, "-m", ants.WORKER, "--help"]).returncode == 0


def _endoscapes_raw(ours_last: float) -> dict:
    """A raw result of benchmarks.lap_endoscapes with made-up scores (two variants, joint, replay numbers)."""
    from benchmarks.harness.lap_protocols import PROTOCOLS

    steps = PROTOCOLS["endoscapes"]["steps"]
    names = [c for s in steps for c in s["classes"]]

    def curve(last_small: float, old_base: float) -> list[dict]:
        return [{"gallbladder": 0.7, "tool": 0.6},
                {"gallbladder": old_base, "tool": old_base, "cystic_artery": 0.2, "cystic_duct": 0.3},
                {"gallbladder": old_base, "tool": old_base, "cystic_artery": 0.2, "cystic_duct": 0.3,
                 "cystic_plate": last_small, "calot_triangle": last_small}]

    joint = {n: 0.45 for n in names}
    shares = {"predicted": [0.7, 0.2, 0.1], "pseudo_labelled": [0.6, 0.15, 0.05]}
    return {"command": ".venv/bin/python -m benchmarks.lap_endoscapes", "threads": 2, "smoke": False,
            "settings": {"batch_size": 8}, "total_seconds": 3600.0,
            "result": {"steps": steps, "description": "Endoscapes-Seg50, real frames, 128x224",
                       "test_patients": PROTOCOLS["endoscapes"]["test_patients"],
                       "curves": {"ours": curve(ours_last, 0.68), "finetune": curve(0.3, 0.1)},
                       "joint": joint, "joint_dice": joint, "final_dice": {"ours": joint, "finetune": joint},
                       "seconds": {"base": 60, "joint": 120, "ours": 300, "finetune": 200, "replay_evidence": 30},
                       "reused": [], "replay": {"count": {"replayed": 4, "base_real": 90, "other_real": 80},
                                                "feature": "f", "frechet": {"replayed_vs_base_real": 3.0,
                                                                          "other_patients_vs_base_real": 1.0,
                                                                          "noise_vs_base_real": 9.0},
                                                "classes": ["background", "gallbladder", "tool"],
                                                "shares": {"replayed": shares, "base_real": shares}, "confidence": 0.7}}}


def test_endoscapes_report_checks_the_targets_and_credits_the_data(tmp_path):
    from benchmarks.harness.lap_endoscapes_report import write_report

    raw = _endoscapes_raw(ours_last=0.4)
    write_report(tmp_path, raw, raw["command"])
    report = (tmp_path / "report.md").read_text()
    targets = report.split("## Targets")[1].split("##")[0]
    assert "joint mean IoU ≥ 0.40: 45.0 — met" in targets
    # ours: (0.68 * 2 + 0.2 + 0.3 + 0.4 * 2) / 6 = 0.443 -> 0.985 of joint; old drop 0.65 -> 0.68 is a gain.
    assert "ours ≥ 0.90 × joint after the last step: 0.985 — met" in targets
    assert "finetune forgets" in targets and "17.5 — yes" in targets  # old = (0.1 + 0.1 + 0.2 + 0.3) / 4
    assert "CC BY-NC-SA 4.0" in report and "Murali" in report
    assert (tmp_path / "iou_endoscapes.png").is_file() and json.loads((tmp_path / "results.json").read_text())
    low = _endoscapes_raw(ours_last=0.0)
    write_report(tmp_path, low, low["command"])
    assert "0.689 — MISSED" in (tmp_path / "report.md").read_text()


def test_endoscapes_report_calls_ours_against_its_rivals_over_the_learning_step_seeds(tmp_path):
    """With --step-seeds, "ours ahead of mib + Dice" is called against the seed spread, seed by seed (paired)."""
    from benchmarks.harness.lap_endoscapes_report import write_report

    raw = _endoscapes_raw(ours_last=0.4)
    result = raw["result"]
    base = result["curves"]["ours"]

    def shifted(curve: list[dict], last: float) -> list[dict]:
        return [*curve[:-1], {**curve[-1], "cystic_plate": last, "calot_triangle": last}]

    # ours' plate and Calot triangle over seeds 0, 1, 2: 0.40, 0.43, 0.37 (all six: spread 0.02); mib + Dice's
    # 0.39, 0.42, 0.36: ours is ahead by 0.0033 in every seed, within the spread: a tie. plop + Dice far behind.
    result["seeded"] = {"steps": result["steps"], "seeds": [0, 1, 2],
                        "curves": {"ours": {"0": base, "1": shifted(base, 0.43), "2": shifted(base, 0.37)},
                                   "mib + Dice": {str(k): shifted(base, v) for k, v in enumerate((0.39, 0.42, 0.36))},
                                   "plop + Dice": {str(k): shifted(base, 0.0) for k in range(3)}},
                        "seconds": {v: {"0": 60, "1": 60, "2": 60} for v in ("ours", "mib + Dice", "plop + Dice")},
                        "variants": {"ours": ["ours", []], "mib + Dice": ["mib", ["--dice-weight", "1"]],
                                     "plop + Dice": ["plop", ["--dice-weight", "1"]]}}
    result["curves"]["mib + Dice"] = result["seeded"]["curves"]["mib + Dice"]["0"]
    result["curves"]["plop + Dice"] = result["seeded"]["curves"]["plop + Dice"]["0"]
    for rival in ("mib + Dice", "plop + Dice"):
        result["final_dice"][rival] = result["joint"]
        result["seconds"][rival] = 60
    write_report(tmp_path, raw, raw["command"])
    report = (tmp_path / "report.md").read_text()
    targets = report.split("## Targets")[1].split("##")[0]
    assert "ours ahead of mib + Dice (same Dice term): +0.3 points — met; over the learning-step seeds, paired: " \
           "+0.3, +0.3, +0.3 points — tie" in targets
    assert "ours ahead of plop + Dice (same Dice term): +13.3 points — met; " in targets
    assert "+13.3, +14.3, +12.3 points — ahead" in targets
    # ours over joint per seed: 0.443, 0.453, 0.433 of 0.45
    assert "(learning-step seeds 0, 1, 2: 0.985 [0.963–1.007])" in targets
    assert "## Ours and its rivals under several learning-step seeds" in report
    assert "| mib + Dice (`--strategy mib --dice-weight 1`) | 44.0 [43.0–45.0] |" in report
    summary = json.loads((tmp_path / "results.json").read_text())["summary"]["checks"]
    assert summary["ours_minus_plop + Dice_seeds"]["call"] == "ahead"


@pytest.mark.parametrize("seeds, problem", [(["0"], "seeds of 1 or more"), (["1", "1"], "each seed once"),
                                            (["-2"], "-2")])
def test_endoscapes_step_seeds_are_new_seeds_each_once(seeds, problem, tmp_path, capsys):
    from benchmarks import lap_endoscapes

    with pytest.raises(SystemExit) as stop:
        lap_endoscapes.main(["--data", str(tmp_path), "--work", str(tmp_path / "w"), "--step-seeds", *seeds])
    error = capsys.readouterr().err
    assert stop.value.code == 2 and "--step-seeds" in error and problem in error, error
    assert not (tmp_path / "w").exists()


@pytest.mark.parametrize("script, option", [("oneshot_protocols", "--seeds"), ("oneshot_spine_levels", "--seeds"),
                                            ("lap_logit_adjustment", "--seeds"), ("lap_endoscapes", "--dev-seeds")])
def test_a_seed_given_twice_is_refused_before_any_work(script, option, tmp_path, capsys):
    """Paired statistics over ``--seeds 0 0 0`` would count one training as three and call its spread zero."""
    import importlib

    main = importlib.import_module(f"benchmarks.{script}").main
    with pytest.raises(SystemExit) as stop:
        main(["--work", str(tmp_path / "w"), "--out", str(tmp_path / "r"), option, "0", "1", "0"])
    error = capsys.readouterr().err
    assert stop.value.code == 2 and f"{option}: each seed once (repeated: 0)" in error, error
    assert not (tmp_path / "w").exists() and not (tmp_path / "r").exists()


@pytest.mark.parametrize("count", ["0", "-300", "1.5", "many"])
def test_endoscapes_diffusion_iterations_are_a_positive_whole_number(count, tmp_path, capsys):
    from benchmarks import lap_endoscapes

    with pytest.raises(SystemExit) as stop:
        lap_endoscapes.main(["--data", str(tmp_path), "--work", str(tmp_path / "w"), "--diffusion-iterations", count])
    assert stop.value.code == 2 and "--diffusion-iterations" in capsys.readouterr().err
    assert not (tmp_path / "w").exists()


def test_learn_steps_pass_the_protocols_step_batch_size_and_seeds(monkeypatch, tmp_path):
    """Every ``lap learn`` of a protocol gets its step iterations, batch size, learning rate and a seed no other step
    of any seed shares."""
    calls = []
    monkeypatch.setattr(lap_runs, "evaluate", lambda model, *a: {"per_class": {n: {"iou": 0.5} for n in names}})
    protocol = PROTOCOLS["endoscapes"]
    names = [c for s in protocol["steps"] for c in s["classes"]]
    settings = protocol["settings"]

    def fit(*args):
        calls.append([str(a) for a in args])
        return 1.0

    for seed in (0, 1):
        curve, seconds = lap_runs.learn_steps("ours", tmp_path / "base", {"gallbladder": 0.5, "tool": 0.5}, protocol,
                                              tmp_path, tmp_path, settings, 2, fit, tag=f"s{seed}", seed=seed)
        assert seconds == 2.0 and len(curve) == 3
    options = [dict(zip(c[1::2], c[2::2])) for c in calls]  # option -> the word after it
    assert [c[0] for c in calls] == ["learn"] * 4
    assert {o["--batch-size"] for o in options} == {str(settings["step_batch_size"])} == {"4"}
    assert {o["--iterations"] for o in options} == {str(settings["step_iterations"])}
    assert {o["--lr"] for o in options} == {str(settings["step_lr"])}
    assert [o["--seed"] for o in options] == ["1", "2", "4", "5"]
    assert options[1]["--model"] == str(tmp_path / "s0_step1") and options[0]["--model"] == str(tmp_path / "base")


def test_logit_adjustment_scores_count_ignored_pixels_for_no_class():
    import torch

    from benchmarks.lap_logit_adjustment import scores

    truth = torch.tensor([[[0, 1, 1, 255], [0, 0, 2, 2]]])
    predicted = torch.tensor([[[1, 1, 0, 1], [1, 0, 2, 0]]])
    out = scores(predicted, truth, {"a": 1, "b": 2})
    # a: called on 3 labelled pixels (the 255 one does not count), 1 of them right; truth has 2.
    assert out["a"] == {"iou": 0.25, "precision": 1 / 3, "recall": 0.5, "predicted_share": 3 / 7, "true_share": 2 / 7}
    assert out["b"]["iou"] == 0.5 and out["b"]["precision"] == 1.0


def test_logit_adjustment_names_the_missing_dev_step_models(tmp_path):
    from benchmarks import lap_logit_adjustment

    data = tmp_path / "data"
    assert lap_logit_adjustment.main(["--data", str(data), "--work", str(tmp_path)]) == 0  # no data: skipped
    (data / "laparoscopy" / "endoscapes_seg50").mkdir(parents=True)
    (data / "laparoscopy" / "endoscapes_seg50" / "labels.json").write_text("{}")
    with pytest.raises(SystemExit, match="ours_with_300_steps_of_batch_4_seed0_step2: no dev-step model there"):
        lap_logit_adjustment.main(["--data", str(data), "--work", str(tmp_path), "--out", str(tmp_path / "r")])
    assert not (tmp_path / "r").exists()
    # A user's file as the report folder, or no thread at all: refused before any work, the file as it was.
    user_file = tmp_path / "notes.txt"
    user_file.write_text("mine")
    for bad in (["--out", str(user_file)], ["--threads", "0"]):
        with pytest.raises(SystemExit) as stop:
            lap_logit_adjustment.main(["--data", str(data), "--work", str(tmp_path), *bad])
        assert stop.value.code == 2
    assert user_file.read_text() == "mine"


def _protocol_runs(full: list[list[float]], others: dict[str, list[list[float]]]) -> list[dict]:
    """Made-up per-seed runs: ``full`` and each of ``others`` give one Dice list per seed."""
    from benchmarks.harness.oneshot_variants import VARIANT_NAMES

    runs = []
    for key, per_seed in {"default": full, **others}.items():
        for seed, dices in enumerate(per_seed):
            runs.append({"variant": key, "seed": seed,
                         "method": _method(f"ours: {VARIANT_NAMES[key]}", "ours", dices, 6.0, train=key != "augmenter")})
    return runs


def test_protocol_report_shows_seed_spread_ties_hd95_and_directions(tmp_path):
    from benchmarks import oneshot_protocols

    runs = _protocol_runs([[0.70, 0.70, 0.70], [0.74, 0.74, 0.74], [0.72, 0.72, 0.72]],
                          {"hint": [[0.71] * 3, [0.73] * 3, [0.72] * 3],         # Δ 0 within the spread: a tie
                           "augmenter": [[0.50] * 3, [0.51] * 3, [0.52] * 3]})   # far below: worse
    block = {"name": oneshot_protocols.DIRECTIONS["oasis_to_vxm"], "seeds": [0, 1, 2], "test": ["vxm"],
             "floor": _method("no registration (floor)", "floor", [0.5, 0.4, 0.6], None, resolution=None),
             "syn": _method(oneshot_protocols.SYN, "peer", [0.7, 0.72, 0.7], 30.0),
             "syn_fine": _method(oneshot_protocols.SYN_FINE, "peer", [0.75, 0.75, 0.75], 60.0),
             "protocols": {"transductive": {"unlabeled": ["vxm"], "runs": runs}}}
    # the settings direction as an earlier report made it, without SyN at 1 mm
    other = {**block, "name": oneshot_protocols.DIRECTIONS["vxm_to_oasis"], "seeds": [0], "test": ["oasis"],
             "syn_fine": None,
             "protocols": {"transductive": {"unlabeled": ["oasis"],
                                            "runs": [r for r in runs if r["seed"] == 0]}}}
    result = {"about": about(module_command("benchmarks.oneshot_protocols", "--smoke")), "skipped": ["Colin27: absent"],
              "settings": {"direction": "oasis_to_vxm", "seeds": [0, 1, 2], "spacing": 2.0, "budget": "b",
                           "smoke": False, "threads": 2, "variants": "default,hint,augmenter", "external": []},
              "directions": {"oasis_to_vxm": block, "vxm_to_oasis": other}, "total_seconds": 60.0}
    oneshot_protocols.write_report(result, tmp_path)
    text = (tmp_path / "report.md").read_text()
    assert "Reported direction**: OASIS atlas → vxm test" in text
    assert "Settings chosen on**: vxm aseg atlas → OASIS test" in text
    assert "reported direction)" in text and "direction settings are chosen on)" in text
    assert "HD95 mm (seed mean [min–max])" in text and "HD95 (mm) per structure" in text
    assert "0.720 [0.700–0.740]" in text                       # the default's seed mean and range
    hint = next(line for line in text.splitlines() if line.startswith("| with the paper's hint loss |"))
    assert "tie (Δ within seed spread" in hint
    augmenter = next(line for line in text.splitlines() if line.startswith("| augmenter alone"))
    assert "| worse |" in augmenter
    assert "not called (1 seed: no spread)" in text            # the one-seed direction calls nothing
    assert "Colin27: absent" in text
    # the transductive target is SyN at 1 mm where it ran (0.720 < 0.750: missed), said to be missing where not
    assert "- default Dice 0.720 vs ANTs SyN defaults @ 1 mm 0.750: MISSED (-0.030" in text
    assert sum(line.startswith("| ANTs SyN defaults @ 1 mm |") for line in text.splitlines()) == 1
    assert text.count("not run here") == 1
    assert all(line.count("|") == 9 for line in text.splitlines() if line.startswith("| with the paper's hint loss |"))
    assert (tmp_path / "dice_oasis_to_vxm_transductive.png").stat().st_size > 0
    assert json.loads((tmp_path / "results.json").read_text())["settings"]["direction"] == "oasis_to_vxm"


def test_protocol_trainings_are_keyed_by_contents_and_options_and_need_a_complete_manifest(tmp_path):
    from benchmarks.harness.oneshot_variants import complete_manifest, options_key

    scan = tmp_path / "scan.nii.gz"
    scan.write_bytes(b"one")
    key = options_key([scan, "--seed", 0])
    assert options_key([scan, "--seed", 0]) == key and options_key([scan, "--seed", 1]) != key
    scan2 = tmp_path / "other" / "scan.nii.gz"      # another path, same bytes: the same training
    scan2.parent.mkdir()
    scan2.write_bytes(b"one")
    assert options_key([scan2, "--seed", 0]) == key
    model = tmp_path / "model"
    model.mkdir()
    assert not complete_manifest(model)              # no manifest: redo
    (model / "manifest.json").write_text(json.dumps({"preprocessing": {"grid": {"shape": [4, 4, 4]}},
                                                     "training": {"options": {"augmenter": {}}, "seconds": {}}}))
    assert not complete_manifest(model)              # the student stage never finished
    (model / "manifest.json").write_text(json.dumps({"preprocessing": {"grid": {"shape": [4, 4, 4]}},
                                                     "training": {"options": {"augmenter": {}, "distill": {}},
                                                                  "seconds": {"augmenter": 1, "distill": 2}}}))
    assert complete_manifest(model)
    borrowed = {"preprocessing": {"grid": {"shape": [4, 4, 4]}},
                "training": {"options": {"augmenter": {}, "distill": {}}, "seconds": {"distill": 2}}}
    (model / "manifest.json").write_text(json.dumps(borrowed))
    assert not complete_manifest(model)              # no augmenter stage, and none borrowed
    borrowed["training"]["augmenter_from"] = {"augmenter_sha256": "0" * 64}
    (model / "manifest.json").write_text(json.dumps(borrowed))
    assert complete_manifest(model)                  # its augmenter came from another training (--augmenter-from)


def test_protocol_training_and_scoring_keys_hold_every_engine_default(monkeypatch):
    """A variant named by the options it changes must become another training (or scoring) when an engine default
    of ``train`` (or ``segment``) changes."""
    import benchmarks.harness.oneshot_variants as variants
    from distillseg.oneshot import cli as oneshot_cli

    defaults = json.loads(variants.verb_defaults("train"))
    assert defaults == json.loads(variants.verb_defaults("train"))           # no object addresses in it
    assert defaults["hint_weight"] == 0.0 and defaults["iterations"] == 500  # read from the parser itself
    assert not {"atlas", "atlas_labels", "unlabeled", "out"} & set(defaults)
    scoring = json.loads(variants.verb_defaults("segment"))
    assert scoring["registration_union"] is True and scoring["predictor"] == "student"
    assert scoring["registration_fusion"] == 0.0 and "refine_smooth_weight" not in scoring  # unset: as trained
    assert not {"model", "input", "output"} & set(scoring)
    original = oneshot_cli.add_oneshot_verbs

    def with_other_defaults(subparsers):
        original(subparsers)
        verbs = subparsers.choices["oneshot"]._subparsers._group_actions[0].choices
        verbs["train"].set_defaults(hint_weight=0.5, refine_smooth_weight=0.25)
        verbs["segment"].set_defaults(registration_union=False)

    # An option added later whose unset default is the behaviour from before keeps the earlier trainings' keys
    # while unset, and becomes part of the key once it has a default of its own.
    assert "refine_smooth_weight" in variants.ADDED_UNSET and "refine_smooth_weight" not in defaults
    monkeypatch.setattr(oneshot_cli, "add_oneshot_verbs", with_other_defaults)
    changed = json.loads(variants.verb_defaults("train"))
    assert changed["hint_weight"] == 0.5 and changed["refine_smooth_weight"] == 0.25
    assert json.loads(variants.verb_defaults("segment"))["registration_union"] is False


def test_dev_steps_hold_out_their_videos_and_compare_variants_seed_by_seed(tmp_path):
    from benchmarks.harness.lap_dev_steps import dev_steps_protocol, dev_steps_lines
    from benchmarks.harness.lap_endoscapes_report import write_report
    from benchmarks.harness.lap_protocols import (ENDOSCAPES_DEV_VIDEOS, ENDOSCAPES_TRAIN_VIDEOS,
                                                  ENDOSCAPES_VAL_VIDEOS)

    protocol = dev_steps_protocol()
    groups = [set(s["patients"]) for s in protocol["steps"]]
    assert protocol["test_patients"] == ENDOSCAPES_DEV_VIDEOS and len(ENDOSCAPES_DEV_VIDEOS) == 6
    # Three disjoint groups of 8 that together are the train videos but the held-out ones; no val video anywhere.
    assert [len(g) for g in groups] == [8, 8, 8] and not (groups[0] & groups[1] or groups[1] & groups[2])
    assert set().union(*groups) == set(ENDOSCAPES_TRAIN_VIDEOS) - set(ENDOSCAPES_DEV_VIDEOS)
    assert not set().union(*groups, ENDOSCAPES_DEV_VIDEOS) & set(ENDOSCAPES_VAL_VIDEOS)
    assert [s["classes"] for s in protocol["steps"]] == [s["classes"] for s in PROTOCOLS["endoscapes"]["steps"]]

    def curve(old: float, new: float) -> list[dict]:
        return [{"gallbladder": 0.6, "tool": 0.6},
                {"gallbladder": 0.5, "tool": 0.5, "cystic_artery": 0.1, "cystic_duct": 0.1},
                {"gallbladder": old, "tool": old, "cystic_artery": 0.1, "cystic_duct": 0.1,
                 "cystic_plate": new, "calot_triangle": new}]

    dev = {"steps": protocol["steps"], "dev_videos": ENDOSCAPES_DEV_VIDEOS, "seeds": [0, 1], "base_seconds": 300.0,
           "curves": {"ours": {"0": curve(0.4, 0.1), "1": curve(0.5, 0.1)},
                      "ours without Dice": {"0": curve(0.5, 0.1), "1": curve(0.5, 0.04)}},
           "seconds": {"ours": {"0": 240.0, "1": 300.0}, "ours without Dice": {"0": 200.0, "1": 200.0}},
           "reused": [], "variants": {"ours": ["ours", []], "ours without Dice": ["ours", ["--dice-weight", "0"]]},
           "replay": {"diffusion_iterations": 1200, "count": {"replayed": 64, "base_real": 90, "other_real": 80},
                      "frechet": {"replayed_vs_base_real": 31.25, "other_patients_vs_base_real": 2.5,
                                  "noise_vs_base_real": 150.0}}}
    lines = "\n".join(dev_steps_lines(dev))
    assert ("The base model's replay (1200 diffusion iterations): Fréchet distance of 64 replayed frames to the "
            "base step's 90 real frames 31.25; other patients' real frames 2.50") in lines
    # ours, seed 0: (0.4 * 2 + 0.1 * 2 + 0.1 * 2) / 6 = 20.0; seed 1: 23.3. Old structures' mean IoU: step 1
    # 0.6 -> 0.5 (-10); step 2 (0.5 * 2 + 0.2) / 4 = 0.3 -> (0.4 * 2 + 0.2) / 4 = 0.25 (-5): the worst is -10.
    assert "| ours (`--strategy ours`) | 21.7 [20.0–23.3] | 27.5 [25.0–30.0] | 10.0 [10.0–10.0] |" in lines
    assert "| -10.0 [-10.0–-10.0] | – | 4.5 min |" in lines
    # Without Dice, seed 0: 23.3 (+3.3 over ours' 20.0); seed 1: (1.0 + 0.2 + 0.08) / 6 = 21.3 (-2.0).
    assert "(`--strategy ours --dice-weight 0`)" in lines and "| +3.3, -2.0 |" in lines
    assert "| cystic_plate | 10.0 [10.0–10.0] | 7.0 [4.0–10.0] |" in lines
    raw = {"command": ".venv/bin/python -m benchmarks.lap_endoscapes --dev-steps ours", "threads": 2, "smoke": False,
           "settings": {"step_iterations": 150}, "total_seconds": 60.0, "dev_steps": dev}
    write_report(tmp_path, raw, raw["command"])
    report = (tmp_path / "report.md").read_text()
    assert "`--dev-steps`, no val video used" in report and "'step_iterations': 150" in report
    assert json.loads((tmp_path / "results.json").read_text())["dev_steps"]["seeds"] == [0, 1]


def test_dev_steps_name_every_variant_and_candidate_and_refuse_others():
    """``--dev-steps`` takes a comma-separated list: a name with a comma could never be chosen."""
    import argparse

    from benchmarks.lap_endoscapes import DEV_STEP_VARIANTS, STEP_CANDIDATES, VARIANTS, _variant_names
    from distillseg.lap.strategies import STRATEGIES

    assert set(DEV_STEP_VARIANTS) == set(VARIANTS) | set(STEP_CANDIDATES)
    assert not set(VARIANTS) & set(STEP_CANDIDATES)
    assert _variant_names(",".join(DEV_STEP_VARIANTS)) == list(DEV_STEP_VARIANTS)
    assert all(strategy in STRATEGIES for strategy, _ in DEV_STEP_VARIANTS.values())
    with pytest.raises(argparse.ArgumentTypeError, match="unknown variant"):
        _variant_names("ours,ours with everything")


def test_boundary_errors_report_a_missed_part_on_the_truths_grid_only(tmp_path):
    from benchmarks import boundary_errors

    truth = np.zeros((40, 12, 12), dtype=np.int16)
    truth[2:38, 3:9, 3:9] = 7
    missed = truth.copy()
    missed[14:] = 0  # the bar's first third found, the rest missed
    affine = np.diag([2.0, 1.0, 1.0, 1.0])
    paths = {}
    for name, array in (("truth", truth), ("missed", missed)):
        paths[name] = tmp_path / f"{name}.nii.gz"
        nib.save(nib.Nifti1Image(array, affine), paths[name])
    (tmp_path / "names.json").write_text(json.dumps({"7": "bar"}))
    out = tmp_path / "report"
    assert boundary_errors.main(["--truth", str(paths["truth"]), "--names", str(tmp_path / "names.json"),
                                 "--out", str(out), f"missed={paths['missed']}"]) == 0
    result = json.loads((out / "results.json").read_text())
    bar_missed = result["segmentations"]["missed"]["structures"]["7"]
    assert bar_missed["hd95_truth_to_pred"] > 30 > bar_missed["hd95_pred_to_truth"]  # 2 mm voxels along the bar
    assert bar_missed["volume_ml"] == pytest.approx(12 * 36 * 2 / 1000) and bar_missed["true_volume_ml"] > 0.14
    assert "## bar (7)" in (out / "report.md").read_text()
    nib.save(nib.Nifti1Image(truth, np.eye(4)), tmp_path / "other_grid.nii.gz")
    with pytest.raises(SystemExit, match="is not on the grid of"):
        boundary_errors.main(["--truth", str(paths["truth"]), "--out", str(out), f"x={tmp_path / 'other_grid.nii.gz'}"])
    # A missing label map is the engine's one sentence, not a traceback; a file as the report folder is refused and
    # left as it was.
    with pytest.raises(SystemExit, match="absent.nii.gz: file does not exist"):
        boundary_errors.main(["--truth", str(paths["truth"]), "--out", str(out), f"x={tmp_path / 'absent.nii.gz'}"])
    before = paths["missed"].read_bytes()
    with pytest.raises(SystemExit):
        boundary_errors.main(["--truth", str(paths["truth"]), "--out", str(paths["missed"]), f"x={paths['missed']}"])
    assert paths["missed"].read_bytes() == before
