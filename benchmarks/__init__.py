"""Reproducible benchmarks of OneShotSeg and IncrementalLap (see ``benchmarks/README.md``).

Each entry script on this level is run from the repository root as a module, e.g.
``.venv/bin/python -m benchmarks.oneshot_brain``, and writes ``benchmarks/results/<name>/`` (``report.md``,
``results.json`` and its PNG plots). What the scripts share lives in ``benchmarks.harness``.
"""
