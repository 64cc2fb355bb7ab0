"""The learning steps on held-out train videos (``benchmarks.lap_endoscapes --dev-steps``): how a setting of the
learning steps (``lap learn``; for ours, whether the new-class soft Dice term is on) is chosen without the val videos.

The protocol's three steps (base gallbladder + tool, step 1 cystic artery + duct, step 2 cystic plate + Calot
triangle), each on its own third of the 24 fitting videos (dealt round-robin, in number order, as the protocol deals
the 30), scored after every step on the 6 held-out train videos. One base model (its seed 0, with its replay
diffusion model) serves every variant and seed: a seed here is the learning steps' seed (batch order, replayed
frames, the new heads' first weights), the same seeds for every variant (paired), so the spread it shows is that of
the steps alone, not of the base model's training.
"""

from __future__ import annotations

from pathlib import Path

from .cli import log
from .lap_protocols import ENDOSCAPES_DEV_VIDEOS, ENDOSCAPES_FITTING_VIDEOS, PROTOCOLS
from .lap_runs import curve_rows, fitter, learn_steps, mean, spread, train_base, variant_tag, worst_old_drop


def dev_steps_protocol() -> dict:
    """The Endoscapes protocol with the fitting videos as its step groups and the held-out train videos as its test
    patients."""
    protocol = PROTOCOLS["endoscapes"]
    count = len(protocol["steps"])
    groups = [ENDOSCAPES_FITTING_VIDEOS[k::count] for k in range(count)]
    return {**protocol, "steps": [{**step, "patients": group} for step, group in zip(protocol["steps"], groups)],
            "test_patients": ENDOSCAPES_DEV_VIDEOS}


def run_dev_steps(data: Path, work: Path, settings: dict, threads: int, reuse: bool, seeds: list[int],
                  variants: dict[str, tuple[str, tuple]], replay_count: int) -> dict:
    """The base step once, how close its diffusion model's replay comes to the real frames (``replay_count``
    frames, Fréchet distances of ``lap_replay_evidence``), then every variant's learning steps under every seed, into
    ``work/dev_steps``. ``variants``: name -> (strategy, extra ``lap learn`` options), as
    ``benchmarks.lap_endoscapes.VARIANTS``."""
    from .lap_replay_evidence import replay_evidence

    protocol = dev_steps_protocol()
    # Another replay diffusion budget is another base model: its own folder, so it never replaces the protocol's.
    budget = settings["diffusion_iterations"]
    work = work / ("dev_steps" if budget == PROTOCOLS["endoscapes"]["settings"]["diffusion_iterations"]
                   else f"dev_steps_diffusion{budget}")
    work.mkdir(parents=True, exist_ok=True)
    reused: list[str] = []
    fit = fitter(threads, reuse, reused)
    log("dev steps: base step")
    base, base_seconds, base_scores = train_base(protocol, data, work, settings, threads, fit)
    # The grid of replayed and real frames stays in the scratch folder: the report has the numbers only.
    evidence = replay_evidence(base, data, protocol, replay_count, 0, work / "replay_grid.png")
    replay = {"diffusion_iterations": budget, "count": evidence["count"],
              "frechet": evidence["frechet"]}
    curves: dict[str, dict[str, list[dict]]] = {}
    seconds: dict[str, dict[str, float]] = {}
    for variant, (strategy, extra) in variants.items():
        curves[variant], seconds[variant] = {}, {}
        for seed in seeds:
            log(f"dev steps: {variant}, seed {seed}")
            curves[variant][str(seed)], seconds[variant][str(seed)] = learn_steps(
                strategy, base, base_scores, protocol, data, work, settings, threads, fit, extra,
                tag=f"{variant_tag(variant)}_seed{seed}", seed=seed)
    return {"steps": protocol["steps"], "dev_videos": ENDOSCAPES_DEV_VIDEOS, "seeds": seeds,
            "base_seconds": base_seconds, "replay": replay, "curves": curves, "seconds": seconds, "reused": reused,
            "variants": {v: [s, list(map(str, e))] for v, (s, e) in variants.items()}}


def last_step_measures(steps: list[dict], curve: list[dict]) -> dict[str, float]:
    """One seed's figures after the last step: all / old / new mean IoU and the worst drop of the old structures in
    any step (IoU, negative = lost)."""
    rows = curve_rows(steps, curve)
    return {"all": rows[-1]["all"], "old": rows[-1]["old"], "new": rows[-1]["new"],
            "worst_old_drop": worst_old_drop(rows)}


def dev_steps_lines(dev: dict) -> list[str]:
    """The report's section on the learning steps' settings (``seed_table_lines`` of the dev steps)."""
    steps, seeds = dev["steps"], [str(s) for s in dev["seeds"]]
    lines = ["## How the learning steps' settings are chosen (`--dev-steps`, no val video used)", "",
             "Steps: " + "; ".join(f"{i}: +{', '.join(s['classes'])} (videos {', '.join(s['patients'])})"
                                   for i, s in enumerate(steps))
             + f". Scored after every step on the held-out train videos {', '.join(dev['dev_videos'])}. One base "
             f"model ({dev['base_seconds'] / 60:.1f} min with its replay diffusion model) serves every variant; the "
             f"seeds ({', '.join(seeds)}) are the learning steps' seeds, the same for every variant, so the spread is "
             "that of the steps alone. IoU in percent after the last step, seed mean [min–max]; a difference smaller "
             "than the seed spread is a tie:", "", *seed_table_lines(dev)]
    if dev.get("replay"):
        replay, f = dev["replay"], dev["replay"]["frechet"]
        lines += ["", f"The base model's replay ({replay['diffusion_iterations']} diffusion iterations): Fréchet "
                  f"distance of {replay['count']['replayed']} replayed frames to the base step's "
                  f"{replay['count']['base_real']} real frames {f['replayed_vs_base_real']:.2f}; other patients' "
                  f"real frames {f['other_patients_vs_base_real']:.2f}, smooth random colour fields "
                  f"{f['noise_vs_base_real']:.2f} (features: the base segmenter's encoder)."]
    if dev.get("reused"):
        lines += ["", f"Reused from an earlier run with the same options: {', '.join(dev['reused'])}."]
    return lines + [""]


def seed_table_lines(runs: dict) -> list[str]:
    """Per variant the seed mean [min–max] after the last step, the paired difference of every variant from the first
    one seed by seed, and the per-structure IoU (seed means). ``runs``: ``steps``, ``seeds``, ``curves`` (variant ->
    seed -> curve), ``seconds`` (variant -> seed -> seconds of its steps), ``variants`` (variant -> [strategy,
    extra options]), as ``run_dev_steps`` returns them; the val protocol's seeded rivals share the form."""
    steps, seeds = runs["steps"], [str(s) for s in runs["seeds"]]
    measures = {v: {s: last_step_measures(steps, curve[s]) for s in seeds} for v, curve in runs["curves"].items()}
    first = next(iter(measures))
    lines = [f"| variant | all six | old (base + step 1) | new (step 2) | worst old drop in a step | "
             f"Δ all vs {first}, per seed | time (two steps) |", "|---|---|---|---|---|---|---|"]
    for variant, per_seed in measures.items():
        deltas = ", ".join(f"{100 * (per_seed[s]['all'] - measures[first][s]['all']):+.1f}" for s in seeds)
        strategy, extra = runs["variants"][variant]
        lines.append(f"| {variant} (`--strategy {' '.join([strategy, *extra])}`) | "
                     + " | ".join(spread([per_seed[s][k] for s in seeds], signed=k == "worst_old_drop")
                                  for k in ("all", "old", "new", "worst_old_drop"))
                     + f" | {'–' if variant == first else deltas} | "
                     f"{mean(runs['seconds'][variant].values()) / 60:.1f} min |")
    names = list(next(iter(next(iter(runs["curves"].values())).values()))[-1])
    lines += ["", "Per-structure IoU after the last step (percent, seed mean [min–max]):", "",
              "| structure | " + " | ".join(runs["curves"]) + " |", "|---|" + "---|" * len(runs["curves"])]
    for name in names:
        lines.append(f"| {name} | " + " | ".join(spread([curve[s][-1][name] for s in seeds])
                                                for curve in runs["curves"].values()) + " |")
    return lines


def paired_call(runs: dict, variant: str, rival: str) -> tuple[list[float], str]:
    """``variant`` minus ``rival`` in mean IoU over all structures after the last step, seed by seed, and the call:
    "ahead" / "behind" when the mean difference is larger than the larger seed spread (max - min) of the two, else
    "tie"."""
    steps, seeds = runs["steps"], [str(s) for s in runs["seeds"]]
    ours = [last_step_measures(steps, runs["curves"][variant][s])["all"] for s in seeds]
    theirs = [last_step_measures(steps, runs["curves"][rival][s])["all"] for s in seeds]
    deltas = [a - b for a, b in zip(ours, theirs)]
    margin = max(max(ours) - min(ours), max(theirs) - min(theirs))
    difference = mean(deltas)
    return deltas, "ahead" if difference > margin else "behind" if difference < -margin else "tie"
