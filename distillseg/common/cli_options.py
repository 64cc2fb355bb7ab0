"""What the command lines of both methods share: the parser, the option definitions and the lazily imported verbs.

- ``EngineArgumentParser`` ends every parsing error in the engine's one sentence (``error: <sentence>.``, exit 2),
  the same contract as every other refusal, so a caller that reads the last stderr line gets it for a typo too.
- ``add_*`` define the options several verbs take (runtime, progress, seed, checkpoints and resuming, the training
  loop), with their types and ranges from ``option_types``; a verb adds only what is its own.
- ``lazy_verb`` makes a verb function that imports its module (torch, MONAI) only when it runs, so ``--help`` and
  option errors are instant.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from distillseg.common import option_types as types
from distillseg.common.progress import MODES
from distillseg.contract.errors import EXIT_USER_ERROR


def _typed(value) -> str:
    """A default as a person would type it: ``-1000 1000``, not ``(-1000.0, 1000.0)``."""
    if isinstance(value, (list, tuple)):
        return " ".join(_typed(item) for item in value)
    return f"{value:g}" if isinstance(value, float) else str(value)


class EngineHelpFormatter(argparse.HelpFormatter):
    """``--help`` as a person reads it: ``(default: …)`` once, only where there is a default to say (not on required
    options, flags or options without one), and defaults written as they are typed."""

    def _get_help_string(self, action):
        text = action.help or ""
        says_default = "default" in text
        if not says_default and action.option_strings and not action.required and action.nargs != 0 \
                and action.default not in (None, "", argparse.SUPPRESS):
            text += " (default: %(default)s)"
        return text.replace("%(default)s", _typed(action.default).replace("%", "%%"))

    def _format_args(self, action, default_metavar):
        # An option that takes either of two forms says so itself (``PatchSize.shown_as``), without argparse's
        # "[X ...]" for its variable count.
        return getattr(action, "shown_as", None) or super()._format_args(action, default_metavar)


class EngineArgumentParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors end in one sentence: usage, then ``error: <sentence>.`` as the last line;
    its help (and its subcommands') is written by ``EngineHelpFormatter``."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", EngineHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        sentence = message[len("argument "):] if message.startswith("argument ") else message
        if sentence[:1].islower():
            sentence = sentence[0].upper() + sentence[1:]
        self.print_usage(sys.stderr)
        self.exit(EXIT_USER_ERROR, f"error: {sentence.rstrip('.')}.\n")


class PatchSize(argparse.Action):
    """``--patch-size I J K`` (voxel counts, ``option_types.patch_word``) or ``--patch-size whole`` (None)."""

    shown_as = "{I J K | whole}"

    def __call__(self, parser, namespace, values, option_string=None):
        if values == ["whole"]:
            setattr(namespace, self.dest, None)
        elif len(values) == 3 and "whole" not in values:
            setattr(namespace, self.dest, tuple(values))
        else:
            parser.error(f"argument {option_string}: takes three voxel counts or 'whole', not "
                         f"{' '.join(map(str, values))}")


class IncreasingPair(argparse.Action):
    """Two numbers, the first below the second (e.g. ``--ct-window LOW HIGH``)."""

    def __call__(self, parser, namespace, values, option_string=None):
        if not values[0] < values[1]:
            parser.error(f"argument {option_string}: {values[0]:g} {values[1]:g} is not a pair LOW HIGH with LOW "
                         "below HIGH")
        setattr(namespace, self.dest, tuple(values))


def lazy_verb(module: str, function: str):
    """A verb function ``(args, progress) -> exit code`` that imports ``module`` only when it runs."""

    def verb(args, progress):
        return getattr(importlib.import_module(module), function)(args, progress)

    verb.__name__ = function
    return verb


def add_progress_option(parser) -> None:
    parser.add_argument("--progress", default="auto", choices=MODES,
                        help="auto = a progress bar on a terminal, else plain lines; plain = a line per stage every "
                             "15 s (for log files); jsonl = one JSON event per line on stdout (for programs such as "
                             "the Slicer module); none = warnings and errors only (default: %(default)s)")
    parser.add_argument("--json", action="store_true",
                        help="print the result as one JSON object on stdout instead of a summary for people")


def add_seed_option(parser) -> None:
    parser.add_argument("--seed", type=types.whole_number(0, types.MAX_SEED), default=0,
                        help="random seed; the same seed on the CPU gives the same result bit for bit "
                             "(default: %(default)s)")


def add_runtime_options(parser: argparse.ArgumentParser, seed: bool = True) -> None:
    """--device, --precision, --threads, --progress (and --seed) with the engine's defaults."""
    group = parser.add_argument_group("runtime")
    group.add_argument("--device", default="auto",
                       help="auto (CUDA if present, else CPU), cpu, cuda, cuda:N or mps (default: %(default)s)")
    group.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"],
                       help="autocast precision: auto = bf16 (fp16 on older GPUs) on CUDA, bf16 on CPUs with "
                            "native bf16, else fp32 (default: %(default)s)")
    group.add_argument("--threads", type=types.cpu_threads, default=0,
                       help="CPU threads for torch, at most the cores this process may use; 0 = torch's default "
                            "(default: %(default)s)")
    add_progress_option(group)
    if seed:
        add_seed_option(group)


def add_memory_option(parser, help: str) -> None:
    parser.add_argument("--max-memory", type=types.memory_size, default=None, metavar="SIZE", help=help)


def add_checkpoint_options(group, out: str) -> None:
    """--checkpoint-every and --resume, which mean the same in both methods: ``--resume`` continues from the
    checkpoint beside ``out`` and is refused when there is none or it was made with other inputs or options."""
    group.add_argument("--checkpoint-every", type=types.whole_number(1), default=50,
                       help=f"write a resumable checkpoint beside {out} every N steps (default: %(default)s)")
    group.add_argument("--resume", action="store_true",
                       help=f"continue from the checkpoint a cancelled or killed run left beside {out} "
                            "(refused when there is none)")


def add_loop_options(group, iterations: int, lr: float, batch_size: int | str, what: str, batch_auto: str = "") -> None:
    """--iterations, --batch-size and --lr of a training loop (``what`` names it in the help); ``batch_size``
    "auto" lets the number of processes settle the batch (``distributed.global_batch``; ``batch_auto`` says how)."""
    group.add_argument("--iterations", type=types.whole_number(1), default=iterations,
                       help=f"{what} steps (default: %(default)s)")
    group.add_argument("--batch-size", type=types.batch_count if batch_size == "auto" else types.whole_number(1, 4096),
                       default=batch_size, help=f"samples per {what} step, over all processes"
                                                + (f"; auto = {batch_auto}" if batch_auto else "")
                                                + " (default: %(default)s)")
    group.add_argument("--lr", type=types.real_number(0, above=True), default=lr,
                       help=f"{what} learning rate (default: %(default)s)")


def add_model_option(parser, help: str = "model bundle folder") -> None:
    parser.add_argument("--model", required=True, metavar="MODEL_DIR", help=help)
