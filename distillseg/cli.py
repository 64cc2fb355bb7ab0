"""The ``distillseg`` command line: ``distillseg oneshot …``, ``distillseg lap …``, ``distillseg model …``.

Each method registers its verbs from its own ``cli`` module; heavy imports (torch, MONAI) happen inside the verbs,
so ``--help`` is instant.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings

from distillseg import __version__
from distillseg.common.cli_options import EngineArgumentParser
from distillseg.common.cli_support import run_cli


def _model_info(args: argparse.Namespace, progress) -> int:
    from distillseg.common.bundle import load_bundle

    bundle = load_bundle(args.model)
    manifest = dict(bundle.manifest)
    if not args.full:
        # The full manifest holds per-step histories; the summary answers "what is this model".
        manifest = {k: v for k, v in manifest.items() if k not in ("history",)}
    json.dump(manifest, sys.stdout, indent=1)
    sys.stdout.write("\n")
    return 0


def _add_model_verbs(subparsers) -> None:
    model = subparsers.add_parser("model", help="inspect model bundles")
    verbs = model.add_subparsers(dest="verb", required=True, metavar="VERB")
    info = verbs.add_parser("info", help="print a model bundle's manifest (method, labels, training summary)")
    info.add_argument("model", metavar="MODEL_DIR", help="model bundle folder")
    info.add_argument("--full", action="store_true", help="include the full step history")
    info.set_defaults(verb_function=_model_info, progress="none")


def build_parser() -> argparse.ArgumentParser:
    from distillseg.lap.cli import add_lap_verbs
    from distillseg.oneshot.cli import add_oneshot_verbs

    parser = EngineArgumentParser(
        prog="distillseg",
        description="Few-label segmentation engine of the OneShotSeg 3D Slicer extension.",
    )
    parser.add_argument("--version", action="version", version=f"distillseg {__version__}")
    subparsers = parser.add_subparsers(dest="method", required=True, metavar="{oneshot,lap,model}")
    add_oneshot_verbs(subparsers)
    add_lap_verbs(subparsers)
    _add_model_verbs(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    # MONAI announces its grid_sample backend and indexing deprecations on every run; users cannot act on them.
    warnings.filterwarnings("ignore", message=".*Using PyTorch native grid_sample.*")
    warnings.filterwarnings("ignore", message=".*non-tuple sequence for multidimensional indexing.*")
    return run_cli(lambda: build_parser().parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
