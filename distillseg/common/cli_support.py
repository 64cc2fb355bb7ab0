"""What every CLI verb shares: runtime options, seeding, and turning failures into one sentence and an exit code."""

from __future__ import annotations

import argparse
import os
import random
import signal
import sys
from typing import Callable

import numpy as np

from distillseg.contract.errors import EXIT_CANCELLED, OutOfMemoryError, UserError
from distillseg.common.progress import MODES, Progress


def add_runtime_options(parser: argparse.ArgumentParser, seed: bool = True) -> None:
    """--device, --precision, --threads, --progress (and --seed) with the engine's defaults."""
    group = parser.add_argument_group("runtime")
    group.add_argument("--device", default="auto",
                       help="auto (CUDA if present, else CPU), cpu, cuda, cuda:N or mps (default: auto)")
    group.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"],
                       help="autocast precision: auto = bf16 (fp16 on older GPUs) on CUDA, bf16 on CPUs with "
                            "native bf16, "
                            "else fp32 (default: auto)")
    group.add_argument("--threads", type=int, default=0,
                       help="CPU threads for torch; 0 = torch's default (default: 0)")
    group.add_argument("--progress", default="auto", choices=MODES,
                       help="auto = a progress bar on a terminal; jsonl = one JSON event per line on stdout "
                            "(for programs such as the Slicer module); none = quiet (default: auto)")
    if seed:
        group.add_argument("--seed", type=int, default=0,
                           help="random seed; the same seed on the CPU gives the same result bit for bit (default: 0)")


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch, and ask torch for deterministic kernels where it has them."""
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


def _is_out_of_memory(exc: BaseException) -> bool:
    import torch

    if isinstance(exc, (MemoryError, torch.cuda.OutOfMemoryError)):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text
                                              or "not enough memory" in text)


def _raise_on_sigterm(signum, frame):  # pragma: no cover - exercised through subprocess tests
    # A cancelled job (SIGTERM from the Slicer job runner) unwinds normally, so temporary files are removed.
    raise SystemExit(EXIT_CANCELLED)


def run_verb(verb: Callable[[argparse.Namespace, Progress], int | None], args: argparse.Namespace) -> int:
    """Run one CLI verb; user errors and out-of-memory become one sentence and a non-zero exit code."""
    progress = Progress(getattr(args, "progress", "auto"))
    if hasattr(signal, "SIGTERM"):
        signal.signal(signal.SIGTERM, _raise_on_sigterm)
    try:
        return int(verb(args, progress) or 0)
    except UserError as exc:
        progress.error(str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        progress.error("Cancelled.")
        return EXIT_CANCELLED
    except (MemoryError, RuntimeError) as exc:
        if not _is_out_of_memory(exc):
            raise
        device = getattr(args, "device", "auto")
        message = OutOfMemoryError(
            f"The job ran out of memory on device '{device}'; try a coarser --spacing, a smaller --patch-size or "
            "--sliding-window, --precision bf16, or another device.")
        progress.error(str(message))
        return message.exit_code
    finally:
        sys.stdout.flush()
