"""The ``distillseg`` command line: ``distillseg oneshot …``, ``distillseg lap …``, ``distillseg model …`` (info,
export-bundle), ``distillseg worker``.

Each method registers its verbs from its own ``cli`` module; heavy imports (torch, MONAI) happen inside the verbs,
so ``--help`` is instant.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings

from distillseg import __version__
from distillseg.common.cli_options import EngineArgumentParser, add_progress_option, lazy_verb
from distillseg.common.cli_support import run_cli


def _model_info(args: argparse.Namespace, progress) -> int:
    from distillseg.common.manifest_validation import read_valid_manifest
    from distillseg.contract.manifest import verify_weights
    from distillseg.contract.model_summary import summary_lines

    manifest = read_valid_manifest(args.model)  # the schema and the weight files checked; no network is built
    verify_weights(args.model, manifest)
    if args.json:
        json.dump(manifest, sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(f"Model {args.model}\n" + "".join(f"  {line}\n" for line in summary_lines(manifest, args.model)))
    return 0


def _add_model_verbs(subparsers) -> None:
    model = subparsers.add_parser("model", help="inspect model bundles, export them as MONAI Bundles")
    verbs = model.add_subparsers(dest="verb", required=True, metavar="VERB")
    info = verbs.add_parser("info", help="summarise a model bundle: method, structures, training data, size, "
                                         "versions")
    info.add_argument("model", metavar="MODEL_DIR", help="model bundle folder (the one holding manifest.json)")
    info.add_argument("--json", action="store_true", help="print the whole manifest as JSON instead")
    info.set_defaults(verb_function=_model_info, progress="none")
    export = verbs.add_parser("export-bundle", help="write an IncrementalLap or OneShotSeg model as a MONAI Bundle that "
                                                    "'python -m monai.bundle run' (and MONAI's other bundle tools) "
                                                    "can use without distillseg")
    export.add_argument("model", metavar="MODEL_DIR", help="model bundle folder (the one holding manifest.json)")
    export.add_argument("out", metavar="OUT", help="folder to write the MONAI Bundle to (configs/, models/model.pt, "
                                                   "scripts/, docs/): a new or empty folder, or an earlier export, "
                                                   "which is replaced")
    add_progress_option(export)
    export.set_defaults(verb_function=lazy_verb("distillseg.common.monai_bundle_export", "export_bundle"))


def build_parser() -> argparse.ArgumentParser:
    from distillseg.common.worker import add_worker_verb
    from distillseg.lap.cli import add_lap_verbs
    from distillseg.oneshot.cli import add_oneshot_verbs

    parser = EngineArgumentParser(
        prog="distillseg",
        description="Few-label segmentation engine of the OneShotSeg 3D Slicer extension.",
    )
    parser.add_argument("--version", action="version", version=f"distillseg {__version__}")
    subparsers = parser.add_subparsers(dest="method", required=True, metavar="{oneshot,lap,model,worker}")
    add_oneshot_verbs(subparsers)
    add_lap_verbs(subparsers)
    _add_model_verbs(subparsers)
    add_worker_verb(subparsers)
    return parser


# Verbs whose processes share the work under torchrun (DDP training; inputs split between the ranks). Every other
# verb runs on rank 0 alone and the other processes end at once: they would write the same files (or take the same
# output lock) and print the same output again.
SHARED_UNDER_TORCHRUN = {("oneshot", "train"), ("oneshot", "segment"), ("lap", "train"), ("lap", "learn"),
                         ("lap", "segment")}


def main(argv: list[str] | None = None) -> int:
    # MONAI announces its grid_sample backend and indexing deprecations on every run, and its and torch's deprecation
    # notices (FutureWarning: e.g. MONAI's get_mask_edges behind HD95) speak to their own callers, this engine:
    # users cannot act on them, so they never reach the user's screen. The test suite still sees them.
    warnings.filterwarnings("ignore", message=".*Using PyTorch native grid_sample.*")
    warnings.filterwarnings("ignore", message=".*non-tuple sequence for multidimensional indexing.*")
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"(monai|torch)(\.|$)")
    return run_cli(lambda: _parsed(argv))


def _parsed(argv: list[str] | None) -> argparse.Namespace:
    """The command line's options; under torchrun, a verb that does not share its work runs on rank 0 alone."""
    args = build_parser().parse_args(argv)
    # torchrun's RANK and WORLD_SIZE, read without importing torch (``common.distributed`` would).
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and (args.method, getattr(args, "verb", None)) \
            not in SHARED_UNDER_TORCHRUN:
        if int(os.environ.get("RANK", "0")) > 0:
            args.verb_function = lambda args, progress: 0
        else:
            os.environ["WORLD_SIZE"] = "1"  # rank 0 works alone: joining a process group would wait for the others
    return args


if __name__ == "__main__":
    raise SystemExit(main())
