"""The tests that drive the module logic, the widget base and the effects against the stand-in engine pass where
PyTorch, MONAI and the engine's torch code cannot be imported, as on a factory Slicer without the PyTorch extension.
A ``sitecustomize.py`` on ``PYTHONPATH`` (so every child process, the stand-in engine included, loads it too) puts a
``sys.meta_path`` finder in front that refuses those imports, and pytest runs those test files in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
STAND_IN_TESTS = ["test_stand_in_stories.py", "test_lap_sequences.py", "test_effect_life_cycle.py",
                  "test_widget_jobs.py", "test_slicer_loading.py", "test_module_reload.py"]
BLOCKED = ("torch", "monai", "torchvision", "distillseg.common", "distillseg.oneshot", "distillseg.lap",
           "distillseg.cli")
BLOCKER = f'''import sys


class RefuseTorch:
    """Refuses PyTorch, MONAI and the engine's torch code: what must run without them is checked here."""

    def find_spec(self, name, path=None, target=None):
        if any(name == blocked or name.startswith(blocked + ".") for blocked in {BLOCKED!r}):
            raise ImportError(f"{{name}} is blocked: this run checks that nothing here needs PyTorch")
        return None


sys.meta_path.insert(0, RefuseTorch())
'''


def test_the_stand_in_tests_pass_without_torch(tmp_path):
    (tmp_path / "sitecustomize.py").write_text(BLOCKER, encoding="utf-8")
    paths = [str(tmp_path), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    for module in ("torch", "monai", "distillseg.oneshot"):
        refused = subprocess.run([sys.executable, "-c", f"import {module}"], env=environment, capture_output=True,
                                 text=True, timeout=120)
        assert refused.returncode != 0 and "is blocked" in refused.stderr, f"{module} was not blocked"
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          *(str(HERE / name) for name in STAND_IN_TESTS)],
                         cwd=HERE.parents[1], env=environment, capture_output=True, text=True, timeout=900)
    summary = run.stdout.strip().splitlines()[-1] if run.stdout.strip() else run.stderr
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert " passed" in summary and "skipped" not in summary and "error" not in summary, summary
