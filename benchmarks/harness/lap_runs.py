"""The ``distillseg lap`` steps the class-incremental benchmark and its validation run, and the IoU they report.

Every step runs the real CLI in a child process (``python -m distillseg lap …``): ``train`` of the base
structures, ``learn`` of each later step with one strategy, ``evaluate`` on the protocol's test patients. With
``--reuse-models`` a bundle an earlier run left in the scratch folder is kept when it was made with the same options
and the strategy's current settings (``train_or_reuse``); its time then comes from its manifest.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from .cli import log
from .paths import REPO

# A smoke run: a few iterations per step, to check the pipeline.
SMOKE_SETTINGS = {"base_iterations": 3, "step_iterations": 2, "joint_iterations": 3, "diffusion_iterations": 2}


def lap(*args, threads: int) -> float:
    """Run one ``distillseg lap`` verb; returns its wall time in seconds."""
    command = [sys.executable, "-m", "distillseg", "lap", *[str(a) for a in args]]
    if args[0] != "demo-data":
        command += ["--progress", "none", "--device", "cpu", "--threads", str(threads)]
    started = time.monotonic()
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return time.monotonic() - started


def _option_values(args: tuple) -> dict[str, list[str]]:
    """``("--lr", 0.001, "--size", 128, 160)`` -> ``{"lr": ["0.001"], "size": ["128", "160"]}``; an option given
    again replaces its earlier values, as argparse does."""
    values: dict[str, list[str]] = {}
    for arg in args:
        if isinstance(arg, str) and arg.startswith("--"):
            key = values[arg[2:].replace("-", "_")] = []
        else:
            key.append(str(arg))
    # A flag as the model records it: ``--pseudo-labels`` -> "True", ``--no-pseudo-labels`` -> pseudo_labels "False".
    for name in [k for k, v in values.items() if not v]:
        if name.startswith("no_"):
            values[name[3:]] = ["False"]
            del values[name]
        else:
            values[name] = ["True"]
    return values


# ``lap learn`` options that change a strategy's settings (``strategy_named``'s overrides).
_STRATEGY_WEIGHTS = ("kd_weight", "pod_weight", "contrastive_weight", "dice_weight", "confidence")


def _same_strategy(stored: dict, wanted: dict[str, list[str]]) -> bool:
    """An earlier bundle's strategy settings are today's under the options given (``--dice-weight 0`` and the
    like change them); a setting added since then must be at its default."""
    from dataclasses import fields

    from distillseg.lap.strategies import Strategy, strategy_named

    overrides = {k: float(wanted[k][0]) for k in _STRATEGY_WEIGHTS if k in wanted}
    if "pseudo_labels" in wanted:
        overrides["pseudo_labels"] = wanted["pseudo_labels"] == ["True"]
    current = strategy_named(stored["name"], **overrides).to_json()
    defaults = {f.name: f.default for f in fields(Strategy)}
    return all(stored.get(k, defaults[k]) == v for k, v in current.items())


_PATH_OPTIONS = ("data", "out", "model", "eval_data")


def _same_values(recorded, given: list[str]) -> bool:
    """Whether an option's value as a model records it (``1.0``, ``["5", "10"]``) is the one given on the command
    line (``["1"]``, ``["5,10"]``): comma lists are split and numbers compared as numbers."""
    items = [str(v) for v in (recorded if isinstance(recorded, list) else [recorded])]
    given = [part for value in given for part in value.split(",")]
    return len(items) == len(given) and all(a == b or (_number(a) is not None and _number(a) == _number(b))
                                            for a, b in zip(items, given))


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def reusable_seconds(verb: str, args: tuple) -> float | None:
    """Seconds of an earlier run's ``train``/``learn`` whose bundle (``--out``) was made with these options and the
    strategy's current settings, else None: ``--reuse-models`` then keeps it instead of training again."""
    wanted = _option_values(args)
    manifest = Path(wanted["out"][0]) / "manifest.json"
    # A model records no file or folder names (the engine keeps paths out of models); the bundle is the one at
    # --out by construction, and a benchmark reads one data folder.
    wanted = {k: v for k, v in wanted.items() if k not in _PATH_OPTIONS}
    if not manifest.is_file():
        return None
    last = json.loads(manifest.read_text())["history"][-1]
    options = last["options"]
    same = options.get("verb") == verb and all(_same_values(options.get(k), values) for k, values in wanted.items())
    if verb == "learn":
        same = same and _same_strategy(last["strategy_settings"], wanted)
    return float(last["seconds"]) if same else None


def train_or_reuse(verb: str, *args, threads: int, reuse: bool, reused: list[str]) -> float:
    """``lap train``/``lap learn`` (wall seconds), or with ``reuse`` an earlier run's equal bundle (its seconds)."""
    seconds = reusable_seconds(verb, args) if reuse else None
    if seconds is None:
        return lap(verb, *args, threads=threads)
    reused.append(Path(_option_values(args)["out"][0]).name)
    log(f"reusing {reused[-1]} (same options and strategy settings)")
    return seconds


def fitter(threads: int, reuse: bool, reused: list[str]):
    """``train_or_reuse`` with these settings, as the ``fit`` function ``train_base`` and ``learn_steps`` take;
    the names of reused bundles are appended to ``reused``."""
    return lambda *args: train_or_reuse(*args, threads=threads, reuse=reuse, reused=reused)


def evaluate(model: Path, protocol: dict, data: Path, work: Path, threads: int) -> dict:
    """``lap evaluate`` of ``model`` on the protocol's test patients; its report."""
    report = work / f"{model.name}.eval.json"
    lap("evaluate", "--model", model, "--data", data, "--source", protocol["eval_source"], "--patients",
        ",".join(protocol["test_patients"]), "--report", report, *protocol.get("data_options", ()), threads=threads)
    return json.loads(report.read_text())


def ious(report: dict, names: list[str]) -> dict[str, float]:
    """IoU of each named structure in a ``lap evaluate`` report."""
    return {n: report["per_class"][n]["iou"] for n in names}


def train_options(protocol: dict, settings: dict) -> list:
    """Options of every ``lap train`` of a protocol: its frame size, the batch size, a fixed seed, the protocol's data
    options and its training settings beyond the defaults (``train_extra``)."""
    return ["--size", *protocol["size"], "--batch-size", settings["batch_size"], "--seed", 0,
            *protocol.get("data_options", ()), *settings.get("train_extra", ())]


def train_base(protocol: dict, data: Path, work: Path, settings: dict, threads: int, fit) -> tuple[Path, float, dict]:
    """``lap train`` of the first step's structures into ``<work>/base``; returns the bundle, its seconds and the IoU
    of those structures on the test patients."""
    first, base = protocol["steps"][0], work / "base"
    seconds = fit("train", "--data", data, "--classes", ",".join(first["classes"]), "--out", base,
                  "--patients", ",".join(first["patients"]), "--iterations", settings["base_iterations"],
                  "--diffusion-iterations", settings["diffusion_iterations"], *train_options(protocol, settings))
    return base, seconds, ious(evaluate(base, protocol, data, work, threads), first["classes"])


def variant_tag(variant: str) -> str:
    """A variant's name as a file-name part: ``"mib + Dice"`` -> ``"mib_plus_Dice"``."""
    return variant.replace(" + ", "_plus_").replace(" ", "_")


def learn_steps(strategy: str, base: Path, base_scores: dict, protocol: dict, data: Path, work: Path, settings: dict,
                threads: int, fit, extra: tuple = (), tag: str | None = None,
                seed: int = 0) -> tuple[list[dict], float]:
    """``lap learn --strategy STRATEGY EXTRA…`` for every step after the base into ``<tag>_step<k>``; returns the IoU
    of the structures seen so far after each step (the base's first) and the seconds of all steps. Step ``k`` of
    ``seed`` runs with ``lap learn --seed seed * steps + k`` (seed 0: ``--seed k``, as the protocol always ran), so
    no two steps of any seed share their batches, replayed frames or new heads' first weights."""
    steps, previous, seconds, curve = protocol["steps"], base, 0.0, [base_scores]
    for index, step in enumerate(steps[1:], 1):
        out = work / f"{tag or strategy}_step{index}"
        # Only ``ours`` replays (not when a variant turns replay off), and the last step's diffusion model would
        # serve a step that never comes.
        replays = strategy == "ours" and not _replay_off(extra)
        diffusion = settings["diffusion_iterations"] if replays and index < len(steps) - 1 else 0
        seconds += fit("learn", "--model", previous, "--data", data, "--new-classes", ",".join(step["classes"]),
                       "--out", out, "--patients", ",".join(step["patients"]), "--strategy", strategy,
                       "--iterations", settings["step_iterations"], "--diffusion-iterations", diffusion,
                       "--batch-size", settings["step_batch_size"], "--lr", settings["step_lr"],
                       "--seed", seed * len(steps) + index,
                       *protocol.get("data_options", ()), *settings.get("step_extra", ()), *extra)
        seen = [c for s in steps[: index + 1] for c in s["classes"]]
        curve.append(ious(evaluate(out, protocol, data, work, threads), seen))
        previous = out
    return curve, seconds


def _replay_off(extra: tuple) -> bool:
    """Whether ``lap learn`` options turn replay off (``--replay 0``)."""
    return any(a == "--replay" and str(b) == "0" for a, b in zip(extra, extra[1:]))


def mean(values) -> float:
    """Mean of the numbers that are not NaN; NaN when none is."""
    values = [v for v in values if v == v]
    return sum(values) / len(values) if values else float("nan")


def spread(values: list[float], signed: bool = False) -> str:
    """Percent: the seed mean, and [min–max] when there are several seeds (``signed``: with + on gains)."""
    form = "{:+.1f}" if signed else "{:.1f}"
    text = form.format(100 * mean(values))
    return text + (f" [{form.format(100 * min(values))}–{form.format(100 * max(values))}]" if len(values) > 1 else "")


def curve_rows(steps: list[dict], curve: list[dict]) -> list[dict]:
    """Per step: mean IoU of the old / new / all structures, and of the old ones before the step."""
    rows = []
    for index, scores in enumerate(curve):
        old = [c for s in steps[:index] for c in s["classes"]]
        new = steps[index]["classes"]
        before = (mean(curve[index - 1][c] for c in old) if index else float("nan"))
        rows.append({"step": index, "old": mean(scores[c] for c in old) if old else float("nan"),
                     "new": mean(scores[c] for c in new), "all": mean(scores.values()), "old_before_step": before})
    return rows


def worst_old_drop(rows: list[dict]) -> float:
    """The largest loss of the old structures' mean IoU in any learning step (``curve_rows``' rows; negative = lost,
    in IoU, not points)."""
    return min(r["old"] - r["old_before_step"] for r in rows[1:])


def step_header(first: str, steps: int, last: str) -> list[str]:
    """Head of a table with one "old / new / all" column per step: ``first`` column, the steps, ``last``."""
    return ["| " + " | ".join([first, *(f"step {i} old / new / all" for i in range(steps)), last]) + " |",
            "|---|" + "---|" * (steps + 1)]


def iou_cells(rows: list[dict]) -> list[str]:
    """Per step, "old / new / all" mean IoU in percent ("–" where a group is empty)."""
    return [" / ".join("–" if r[g] != r[g] else f"{100 * r[g]:.1f}" for g in ("old", "new", "all")) for r in rows]


def final_iou_table(columns: dict[str, dict[str, float]]) -> list[str]:
    """Per-structure IoU in percent after the last step: a row per structure, a column per strategy or variant
    (``columns``: its name -> structure -> IoU; the first column's structures, in its order)."""
    names = list(next(iter(columns.values())))
    return (["| structure | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
            + [f"| {name} | " + " | ".join(f"{100 * c[name]:.1f}" for c in columns.values()) + " |"
               for name in names])
