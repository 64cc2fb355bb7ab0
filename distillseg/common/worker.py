"""``distillseg worker``: one engine process that serves segmentation requests until it is idle (protocol:
``distillseg.contract.worker``).

Each request is the command line of a ``segment`` verb, parsed by the same parser and run by the same verb function
as the command itself, so its event lines, outputs and exit code are the command's. What a request leaves behind
for the next one is its loaded model (``common.model_cache``, keyed by the manifest's SHA-256) and the imports: a
second scan with the same model skips the interpreter start, torch and MONAI imports and bundle loading (about 3 s of
a 10 s brain segmentation on a 2-core CPU). Requests run one at a time on the main thread; a reader thread waits on
stdin so the idle timeout needs no ``select`` (which Windows pipes lack). After ``--idle-minutes`` without a request
the process exits, which frees its memory (GPU memory included).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import queue
import sys
import threading
import traceback

from distillseg.common.cli_support import run_verb
from distillseg.common.model_cache import ModelCache
from distillseg.contract import worker as protocol
from distillseg.contract.errors import EXIT_USER_ERROR, UserError
from distillseg.contract.events import ERROR, MESSAGE, event_line

EXIT_CRASHED = 1  # a request that raised something other than a user error (the command would have crashed)


def _write(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _refuse(request_id: str, message: str) -> None:
    _write(event_line(ERROR, **{MESSAGE: message}))
    _write(protocol.done_line(request_id, EXIT_USER_ERROR))


def _stdin_lines(lines: queue.Queue) -> None:
    for line in sys.stdin:
        lines.put(line)
    lines.put(None)  # stdin closed: the caller is gone


def _parse(parser: argparse.ArgumentParser, arguments: list[str]) -> argparse.Namespace:
    """The request's options as the command would parse them; argparse's own complaint as a ``UserError``."""
    complaint = io.StringIO()
    try:
        with contextlib.redirect_stderr(complaint), contextlib.redirect_stdout(complaint):  # --help too
            return parser.parse_args(arguments)
    except SystemExit as exc:
        if exc.code == 0:  # --help or --version printed its text and would have ended the command
            raise UserError(f"distillseg {' '.join(arguments[:2])}: ask for --help from the command itself, not "
                            "the worker.") from None
        # The engine's parser ends with "error: <sentence>." (``cli_options.EngineArgumentParser``).
        lines = [line for line in complaint.getvalue().splitlines() if line.strip()]
        message = lines[-1].removeprefix("error: ") if lines else \
            f"distillseg {' '.join(arguments[:2])}: the request's options cannot be parsed"
        raise UserError(message.rstrip(".") + ".") from None


class _ProcessState:
    """What one request may change in the process and the next must not inherit: torch's thread count and its
    deterministic-algorithms switch (``lap segment`` seeds and turns it on; ``oneshot segment`` does not)."""

    def __init__(self):
        import torch

        self.threads = torch.get_num_threads()

    def restore(self) -> None:
        import torch

        torch.set_num_threads(self.threads)
        torch.use_deterministic_algorithms(False)


def _handle(line: str, parser: argparse.ArgumentParser, cache: ModelCache, state: _ProcessState) -> None:
    request_id = protocol.request_id_of(line)
    try:
        request_id, arguments = protocol.parse_request(line)
        args = _parse(parser, arguments)
    except (protocol.RequestError, UserError) as exc:
        _refuse(request_id, str(exc))
        return
    args.progress = "jsonl"
    args.model_cache = cache
    state.restore()
    try:
        code = run_verb(args)
    except Exception as exc:  # a bug: the command would have crashed with this traceback
        traceback.print_exc(file=sys.stderr)
        # Whatever the failed request built may be half-done: later requests load their models anew.
        cache.clear()
        _write(event_line(ERROR, **{MESSAGE: f"The engine stopped unexpectedly ({exc.__class__.__name__}: {exc})."}))
        code = EXIT_CRASHED
    _write(protocol.done_line(request_id, code))


def serve(args: argparse.Namespace, progress) -> int:
    """Answer requests from stdin until it closes or ``args.idle_minutes`` pass without one."""
    from distillseg.cli import build_parser

    if not args.idle_minutes > 0:
        raise UserError(f"--idle-minutes must be more than 0, not {args.idle_minutes:g}.")
    parser = build_parser()
    cache = ModelCache(args.models)
    state = _ProcessState()
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=_stdin_lines, args=(lines,), daemon=True).start()
    while True:
        try:
            line = lines.get(timeout=args.idle_minutes * 60)
        except queue.Empty:
            progress.log(f"no request for {args.idle_minutes:g} min: the worker exits")
            return 0
        if line is None:
            return 0
        if line.strip():
            _handle(line, parser, cache, state)


def add_worker_verb(subparsers) -> None:
    served = ", ".join(" ".join(verb) for verb in protocol.WORKER_VERBS)
    example = protocol.request_line("1", ["oneshot", "segment", "--model", "M", "--input", "scan.nii.gz", "--output",
                                          "labels.nii.gz"])
    worker = subparsers.add_parser(
        "worker", help=f"serve {served} requests (one JSON line each on stdin) from one long-lived process",
        description=f"Reads one JSON request per line on stdin, e.g. {example}, and answers with the command's "
                    f"--progress jsonl events and a final {{\"event\": \"{protocol.DONE}\", \"id\": …, "
                    f"\"{protocol.EXIT_CODE}\": …}} line. Loaded models are kept between requests.")
    worker.add_argument("--idle-minutes", type=float, default=protocol.DEFAULT_IDLE_MINUTES,
                        help="exit after this many minutes without a request (default: %(default)g)")
    worker.add_argument("--models", type=int, default=2,
                        help="loaded models kept for later requests, least recently used dropped first "
                             "(default: %(default)s)")
    worker.set_defaults(verb_function=serve, progress="jsonl")
