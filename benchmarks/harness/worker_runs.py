"""Requests to one ``distillseg worker`` process, each timed from the moment it is sent to its ``done`` line.

This is what a Slicer session pays per segmentation once the worker runs: the first request also pays the worker's
imports and the model's loading (the cold start inside the worker), later ones only reading, pre-alignment,
network, resampling and writing. The worker's peak memory is its resident set sampled every ``SAMPLE_S`` seconds
(the kernel's ``ru_maxrss`` would start at the launching benchmark's own peak, see ``run``); its GPU peak is the
engine's own ``peak_memory_mb`` of each request (CUDA allocator peak).
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time

from distillseg.contract.events import ERROR, EVENT, MESSAGE, RESULT, parse_event_line, result_fields
from distillseg.contract.worker import EXIT_CODE, is_done, request_line

from .paths import REPO
from .run import SAMPLE_S


def worker_requests(requests: list[list], env: dict | None = None, timeout_s: float = 1800) -> dict:
    """Send each request (the command line after ``distillseg``) in turn to one new worker.

    Returns ``{"requests": [{"seconds", "exit_code", "result", "error"}, ...], "peak_rss_mb": …,
    "seconds": whole worker lifetime}``.
    """
    import os

    import psutil

    started = time.perf_counter()
    worker = subprocess.Popen([sys.executable, "-m", "distillseg", "worker"], cwd=REPO, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1,
                              env={**os.environ, **(env or {})})
    peak = [0]
    sampler = threading.Thread(target=_sample_rss, args=(psutil.Process(worker.pid), peak), daemon=True)
    sampler.start()
    answers = []
    try:
        for number, arguments in enumerate(requests):
            sent = time.perf_counter()
            worker.stdin.write(request_line(str(number), [str(a) for a in arguments]) + "\n")
            worker.stdin.flush()
            answers.append(_answer(worker, sent, timeout_s))
    finally:
        worker.stdin.close()
        worker.wait()
        sampler.join()
    return {"requests": answers, "peak_rss_mb": round(peak[0] / 2**20),
            "seconds": round(time.perf_counter() - started, 2)}


def _sample_rss(process, peak: list[int]) -> None:
    """Keep the largest resident set of ``process`` in ``peak[0]`` until it ends."""
    import psutil

    while True:
        try:
            peak[0] = max(peak[0], process.memory_info().rss)
        except psutil.Error:
            return
        time.sleep(SAMPLE_S)


def _answer(worker: subprocess.Popen, sent: float, timeout_s: float) -> dict:
    """Read the worker's lines up to the request's ``done``: its time, exit code, result and error."""
    answer = {"result": {}, "error": None}
    for line in worker.stdout:
        event = parse_event_line(line.strip())
        if event is None:
            continue
        if event[EVENT] == RESULT:
            answer["result"] = result_fields(event)
        elif event[EVENT] == ERROR:
            answer["error"] = event.get(MESSAGE)
        elif is_done(event):
            return {"seconds": round(time.perf_counter() - sent, 3), "exit_code": event[EXIT_CODE], **answer}
        if time.perf_counter() - sent > timeout_s:
            break
    worker.kill()
    raise RuntimeError(f"the worker ended, or gave no answer within {timeout_s:.0f} s, without finishing a request "
                       f"({answer['error'] or 'no error event'})")
