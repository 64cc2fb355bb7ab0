"""Loaded models kept by a long-lived engine process (``distillseg worker``) between requests.

A model is known by the SHA-256 of its bundle's ``manifest.json``, which lists every weight file's own SHA-256: a
bundle replaced by another one (a newer training written under the same name) has another key and is loaded anew,
while the same bundle under another path is found again. The key also holds how the model was loaded (device,
precision, window…), since those change the loaded object. A plain ``distillseg`` command has no cache and simply
loads (``cached_model`` with ``args`` lacking ``model_cache``).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Hashable, TypeVar

from distillseg.contract.manifest import MANIFEST, sha256_of

Model = TypeVar("Model")


class ModelCache:
    """At most ``capacity`` loaded models; the least recently used one is dropped first."""

    def __init__(self, capacity: int = 2):
        self.capacity = max(1, int(capacity))
        self._models: OrderedDict[tuple, Any] = OrderedDict()

    def get(self, folder: str | Path, how: Hashable, load: Callable[[], Model], progress=None) -> Model:
        """The model of bundle ``folder`` loaded as ``how`` says: from the cache, else ``load()`` (then kept).

        ``progress`` (a ``Progress``) gets a log line saying which it was. A bundle whose manifest cannot be read
        is handed to ``load``, which refuses it with the usual sentence.
        """
        manifest = Path(folder) / MANIFEST
        if not manifest.is_file():
            return load()
        key = (sha256_of(manifest), how)
        if key in self._models:
            self._models.move_to_end(key)
            if progress is not None:
                progress.log(f"model {folder}: reused from the worker's cache")
            return self._models[key]
        started = time.perf_counter()
        model = load()
        self._models[key] = model
        while len(self._models) > self.capacity:
            self._models.popitem(last=False)
        if progress is not None:
            progress.log(f"model {folder}: loaded in {time.perf_counter() - started:.1f} s and kept for later requests")
        return model

    def clear(self) -> None:
        self._models.clear()

    def __len__(self) -> int:
        return len(self._models)


def cached_model(args, how: Hashable, load: Callable[[], Model], progress=None) -> Model:
    """``load()`` for a command (``args`` without ``model_cache``), the worker's cached model for ``args.model``
    otherwise."""
    cache = getattr(args, "model_cache", None)
    return load() if cache is None else cache.get(args.model, how, load, progress)
