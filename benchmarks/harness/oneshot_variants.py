"""Our method's ablation variants, each trained once per (options, inputs) and kept under a key of both, so a
benchmark of many CPU-hours can be stopped and resumed: a rerun reuses every finished training and every finished
scoring, redoes a training whose bundle has no complete manifest, and continues a killed training from its
checkpoint (``oneshot train --resume``).

Why the key hashes the *contents* of the input files and not their paths: the data copies are written by the
benchmark itself, and a reused training must have seen exactly the scans it is now scored for.

The registration stage is shared: every variant below changes only the student stage (its losses, its prior input,
its synthetic images), so each starts from the same seed's default model's trained augmenter (``oneshot train
--augmenter-from``) instead of training an identical one again, which saves about a third of each training. With
the same seed that gives exactly the weights an own augmenter training would (``Testing/engine/
test_oneshot_augmenter_from.py``). "augmenter alone" needs no training of its own: the default model's registration
network used as the predictor (label propagation).

The default configuration has no hint loss (``--hint-weight 0``, see ``distillseg/oneshot/distill.py``): the paper's
hint is the variant that adds it, and the reconstruction ablation is the hint with an untrained teacher.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from distillseg.contract.paths import CHECKPOINT_SUFFIX

from .cli import log
from .oneshot import segment_and_score, train_ours
from .run import CommandFailed

# (key, report name, extra `oneshot train` options or None, extra `segment`/`evaluate` options). A variant without
# training options is the same seed's default model, scored another way: its augmenter as the predictor, or its
# label maps kept to the largest connected component of each structure, or only of those in one piece in the atlas
# (stray islands are what keeps HD95 above SyN's), or the student kept where the augmenter's warp of the atlas puts
# each structure (``--registration-margin``: 0 mm, chosen on the settings direction over 0, 2 and 4 mm), or the
# student alone: without ``segment``'s default union of each structure in several pieces in the atlas (the choroid
# plexuses) with the region the augmenter's one-pass warp of the atlas gives it (``--no-registration-union``), or
# the student averaged with the per-scan refined registration at a more pliant refinement (``fusion``, chosen on
# the brains' settings direction; it was ``segment``'s default at 471b07a, the commit of the reports
# ``oneshot_protocols_fusion_*`` and ``oneshot_spine_levels_fusion``, whose "default" rows are this variant).
VARIANTS = [
    ("default", "default (no hint loss; registration union)", [], []),
    ("hint", "with the paper's hint loss", ["--hint-weight", 1], []),
    ("hint_adapter", "with the hint through a learned 1×1×1 adapter (FitNets)",
     ["--hint-weight", 1, "--hint-adapter"], []),
    ("hint_no_recon", "with the hint, teacher without reconstruction loss", ["--hint-weight", 1, "--recon-weight", 0],
     []),
    ("augmenter", "augmenter alone (label propagation)", None, ["--predictor", "augmenter"]),
    ("largest", "default, largest component of every structure", None, ["--keep-largest"]),
    ("largest_atlas", "default, largest component of structures in one piece in the atlas", None,
     ["--keep-largest", "atlas"]),
    ("bounded", "default, each structure within its registered atlas region (0 mm margin)", None,
     ["--registration-margin", 0]),
    ("no_union", "student alone (no union of the structures in pieces in the atlas with their registered region)",
     None, ["--no-registration-union"]),
    ("fusion", "student averaged with the refined registration (fusion 0.5, refinement smoothness 0.25)", None,
     ["--registration-fusion", 0.5, "--refine-smooth-weight", 0.25]),
    ("no_prior", "no atlas prior", ["--no-atlas-prior"], []),
    ("no_appearance", "no appearance transfer", ["--appearance", 0], []),
    # A more pliant refinement of the deformations the synthetic pairs come from (the default's smoothness 1 leaves
    # the caudate under-segmented beside the atlas's larger ventricles); the same seed's augmenter network.
    ("refine_smooth", "refinement smoothness 0.25 in training too", ["--refine-smooth-weight", 0.25], []),
    # Every synthetic deformation a registered one: none drawn between a target and the atlas (whose ventricles are
    # the larger) or between two targets.
    ("no_mix", "no deformation mixing", ["--mix-beta", 0], []),
    # Whether the student's boundaries are still settling at the CLI's 500 iterations (its cosine schedule is
    # stretched over the longer budget, not continued).
    ("long_student", "student trained 3× longer (1500 iterations)", ["--iterations", 1500], []),
]
VARIANT_NAMES = {key: name for key, name, _, _ in VARIANTS}

_hashes: dict[Path, str] = {}

# Options added to the engine after trainings were keyed whose unset default (None) is the behaviour from before
# they existed: left out of ``verb_defaults`` while unset, so adding one does not discard finished trainings.
ADDED_UNSET = {"refine_smooth_weight"}


def file_hash(path: Path) -> str:
    """SHA-256 of a file's bytes (memoised for the run: the same data copies are hashed for every training)."""
    path = Path(path).resolve()
    if path not in _hashes:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        _hashes[path] = digest.hexdigest()
    return _hashes[path]


def options_key(arguments: list) -> str:
    """A short hash of a command's arguments, each existing file replaced by the hash of its contents."""
    described = [file_hash(a) if isinstance(a, Path) and a.is_file() else str(a) for a in arguments]
    return hashlib.sha256(json.dumps(described).encode()).hexdigest()[:16]


def verb_defaults(verb: str) -> str:
    """The default of every ``oneshot <verb>`` option (``train`` or ``segment``), as one JSON text. It is part of
    every training's and every scoring's key: a variant named by the options it changes (``[]`` for the default
    configuration) means another training or scoring once an engine default changes, and must not reuse one made
    under the old default."""
    from distillseg.cli import build_parser

    inputs = {"train": {"atlas": "a", "atlas_labels": "l", "unlabeled": "u", "out": "o"},
              "segment": {"model": "m", "input": "i", "output": "o"}}[verb]
    flags = [f"--{name.replace('_', '-')}={value}" for name, value in inputs.items()]
    parsed = build_parser().parse_args(["oneshot", verb, *flags])
    return json.dumps({k: v for k, v in sorted(vars(parsed).items())
                       if k not in inputs and not callable(v) and not (k in ADDED_UNSET and v is None)}, default=str)


def complete_manifest(model: Path) -> bool:
    """Whether ``model`` holds a bundle whose manifest names both finished stages (a training killed while writing,
    or a folder some other run left, is not)."""
    try:
        manifest = json.loads((model / "manifest.json").read_text())
        training = manifest["training"]
        borrowed = isinstance(training.get("augmenter_from"), dict)  # its augmenter stage ran in another training
        return bool(manifest["preprocessing"]["grid"]) and all(
            stage in training["options"] and (stage in training["seconds"] or stage == "augmenter" and borrowed)
            for stage in ("augmenter", "distill"))
    except (OSError, ValueError, KeyError, TypeError):
        return False


def train_keyed(work: Path, atlas: Path, atlas_labels: Path, unlabeled: list[Path], options: list,
                threads: int) -> dict:
    """``oneshot train`` into ``work/models/<key>`` (key = ``options_key`` of every input and option and of the
    engine's defaults), reusing a complete bundle there, continuing a checkpoint a killed run left, else training
    from scratch."""
    key = options_key([atlas, atlas_labels, *unlabeled, *options, verb_defaults("train")])
    model = work / "models" / key
    checkpoint = model.with_name(model.name + CHECKPOINT_SUFFIX)
    if complete_manifest(model):
        log(f"  reusing the finished training {model.name}")
    else:
        if model.exists():  # a folder without a finished bundle: the engine would refuse to write over it
            shutil.rmtree(model)
        if checkpoint.exists():
            log(f"  continuing training {model.name} from its checkpoint")
            try:
                return _trained(train_ours(work, key, atlas, atlas_labels, unlabeled, [*options, "--resume"],
                                           threads), key, options)
            except CommandFailed as error:  # e.g. a checkpoint of a different engine version: start again
                log(f"  resume refused ({error}); training {model.name} from scratch")
                shutil.rmtree(checkpoint, ignore_errors=True)
                shutil.rmtree(model, ignore_errors=True)
    return _trained(train_ours(work, key, atlas, atlas_labels, unlabeled, options, threads, reuse=True), key, options)


def _trained(trained: dict, key: str, options: list) -> dict:
    return {**trained, "key": key, "options": [str(o) for o in options]}


def scored_keyed(work: Path, trained: dict, scoring: list, data: dict, evaluate_options: list,
                 threads: int) -> dict:
    """``segment_and_score`` of a trained model with the segment options ``scoring`` (``--predictor P`` among them,
    else the student) on ``data['tests']``, cached in ``work/scores/<model key>_<P>[_<other options>].json`` (keyed
    also by the test files' contents and ``segment``'s defaults)."""
    tests = data["tests"]
    predictor = scoring[scoring.index("--predictor") + 1] if "--predictor" in scoring else "student"
    extra = [o for o in scoring if o not in ("--predictor", predictor)]
    key = options_key([trained["key"], predictor, *[t[1] for t in tests], *[t[2] for t in tests],
                       *evaluate_options, *extra, verb_defaults("segment")])
    name = "_".join([trained["key"], predictor, *(str(o).strip("-").replace("-", "_") for o in extra)])
    cache = work / "scores" / f"{name}.json"
    if cache.is_file():
        cached = json.loads(cache.read_text())
        if cached.get("key") == key:
            return cached["scored"]
    scored = segment_and_score(work, name, trained, [t[1] for t in tests], [t[2] for t in tests],
                               [t[0] for t in tests], data["structures"], data["names"], evaluate_options, threads,
                               predictor=predictor, label_map=data["label_map"], segment_options=extra)
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps({"key": key, "scored": scored}, indent=1, default=str) + "\n")
    return scored


def run_variants(work: Path, data: dict, unlabeled: list[Path], common: list, variants: list[str],
                 seeds: list[int], evaluate_options: list, threads: int) -> list[dict]:
    """Every variant in ``variants`` (keys of ``VARIANTS``) with every seed, scored on ``data['tests']``: a list of
    ``{"variant", "seed", "method": method result}``. Seeds are the outer loop, so a stopped run has whole seeds;
    the default configuration trains first and lends its augmenter to the seed's other variants (when it is among
    them)."""
    runs = []
    for seed in seeds:
        default = None
        for key, name, extra, scoring in VARIANTS:
            if key not in variants:
                continue
            trained_itself = extra is not None
            if trained_itself:
                log(f"{name}, seed {seed}: training")
                shared = ["--augmenter-from", Path(default["model"])] if default and key != "default" else []
                trained = train_keyed(work, data["atlas"], data["atlas_labels"], unlabeled,
                                      [*common, "--seed", seed, *extra, *shared], threads)
                default = trained if key == "default" else default
            else:
                # the default model's bundle, scored another way
                trained = default or train_keyed(work, data["atlas"], data["atlas_labels"], unlabeled,
                                                 [*common, "--seed", seed], threads)
                default = trained
            scored = scored_keyed(work, trained, scoring, data, evaluate_options, threads)
            runs.append({"variant": key, "seed": seed,
                         "method": {"name": f"ours: {name}", "kind": "ours", "resolution_mm": trained["resolution_mm"],
                                    "train": trained if trained_itself else None,
                                    "trained_with": None if trained_itself else trained["key"], **scored}})
    return runs
