"""Types and ranges of command-line values, shared by every verb of both methods (argparse ``type=`` functions).

Each function turns one word of the command line into a value or raises ``argparse.ArgumentTypeError`` with the
reason, so a bad value is refused by the parser, before any file is read or any work starts, with the same words
whichever verb it was given to. ``cli_options.EngineArgumentParser`` prints that reason as the engine's one
sentence (``error: --iterations: 0 is not a whole number of at least 1.``, exit code 2).

Numbers are refused when they are not finite (``nan``, ``inf``); counts are whole numbers (``2.5`` and ``1e3`` are
refused, so a typo never turns into a different count). Ranges are what the engine can run, not what is sensible:
a learning rate of 10 is accepted (the training then says it diverged), zero steps are not (they would silently do
nothing).
"""

from __future__ import annotations

import argparse
import math
import os
import re
from typing import Callable

MAX_SEED = 2**32 - 1   # NumPy's seeds are 32-bit
MAX_GRID = 4096        # voxels or pixels along one axis of a working grid, frame or window
_SIZE_UNITS = {"": 1, "B": 1, "K": 2**10, "KB": 2**10, "M": 2**20, "MB": 2**20, "G": 2**30, "GB": 2**30,
               "T": 2**40, "TB": 2**40}
# Letters of any script, digits, "_", "-", ".", " " and "+": what structure and patient names hold in practice
# (DSAD's are lower case with underscores); path separators or control characters would reach into folders.
_PLAIN_NAME = re.compile(r"[\w.+ -]+")


def _range_text(low: float | None, high: float | None, above: bool = False) -> str:
    if low is not None and high is not None:
        return f"from {low:g} to {high:g}"
    if low is not None:
        return f"above {low:g}" if above else f"of at least {low:g}"
    return f"of at most {high:g}"


def whole_number(low: int | None = None, high: int | None = None) -> Callable[[str], int]:
    """A whole number in ``low..high`` (either end open when None)."""

    def parse(text: str) -> int:
        try:
            value = int(str(text).strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
        if (low is not None and value < low) or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"{value} is not a whole number {_range_text(low, high)}")
        return value

    return parse


def real_number(low: float | None = None, high: float | None = None, above: bool = False
                ) -> Callable[[str], float]:
    """A finite number in ``low..high``; with ``above``, strictly greater than ``low``."""

    def parse(text: str) -> float:
        try:
            value = float(str(text).strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"'{text}' is not a finite number")
        if (low is not None and (value < low or (above and value == low))) or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"{value:g} is not a number {_range_text(low, high, above)}")
        return value

    return parse


def multiple_of(step: int, low: int, high: int) -> Callable[[str], int]:
    """A whole number in ``low..high`` that is a multiple of ``step`` (working sizes of networks that halve the
    grid log2(step) times)."""
    count = whole_number(low, high)

    def parse(text: str) -> int:
        try:
            value = count(text)
        except argparse.ArgumentTypeError:
            value = None
        if value is None or value % step:
            raise argparse.ArgumentTypeError(f"'{text}' is not a multiple of {step} from {low} to {high}")
        return value

    return parse


def batch_count(text: str) -> int | None:
    """A global batch: a whole number 1..4096, or ``auto`` (None: settled by the number of processes)."""
    return None if text == "auto" else whole_number(1, 4096)(text)


def cpu_threads(text: str) -> int:
    """CPU threads for torch: 0 (torch's default) up to the cores this process may use."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return whole_number(0, cores)(text)


def spacing_mm(text: str) -> str | float:
    """``auto``, ``atlas`` or a voxel size in millimetres (``2``, ``1.5mm``) from 0.05 to 50."""
    word = str(text).strip().lower()
    if word in ("auto", "atlas"):
        return word
    number = word[:-2].strip() if word.endswith("mm") else word
    try:
        value = float(number)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a voxel size in mm, 'atlas' or 'auto'") from None
    if not math.isfinite(value) or not 0.05 <= value <= 50:
        raise argparse.ArgumentTypeError(f"{text} mm is outside 0.05..50 mm")
    return value


def memory_size(text: str) -> int:
    """Bytes in a size written as people write it: a number with an optional binary unit, e.g. ``6G``, ``800M``."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kmgtKMGT]?[bB]?)\s*", str(text))
    value = int(float(match.group(1)) * _SIZE_UNITS[match.group(2).upper()]) if match else 0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"'{text}' is not a memory size; write e.g. 6G, 1.5G or 800M")
    return value


def name_list(text: str) -> list[str]:
    """Comma-separated names (structures, patients): at least one, none twice, no path separators."""
    names = [n.strip() for n in str(text).split(",") if n.strip()]
    if not names:
        raise argparse.ArgumentTypeError("needs at least one name (comma-separated)")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise argparse.ArgumentTypeError(f"names '{repeated[0]}' more than once")
    odd = next((n for n in names if not _PLAIN_NAME.fullmatch(n) or n in (".", "..")), None)
    if odd is not None:
        raise argparse.ArgumentTypeError(f"'{odd}' is not a plain name (letters, digits, spaces, '_', '-', '.')")
    return names


def patch_word(text: str) -> str | int:
    """One word of ``--patch-size``: ``whole`` or a voxel count from 32 (the U-Nets halve the patch four times
    and their instance norms need at least 2 voxels at the bottom)."""
    if str(text).strip().lower() == "whole":
        return "whole"
    try:
        return whole_number(32, MAX_GRID)(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"'{text}' is not 'whole' or a voxel count from 32 to {MAX_GRID}") \
            from None
