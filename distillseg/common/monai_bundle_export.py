"""``distillseg model export-bundle MODEL_DIR OUT``: a model as a MONAI Bundle, the folder MONAI's own tools load
without distillseg (``python -m monai.bundle run``; its config ids are those MONAI Label's bundle apps read)::

    OUT/
      configs/metadata.json    MONAI bundle metadata (schema meta_schema_20240725): versions, task, labels as the
                               output's channel_def; its first key marks the folder as this engine's export
      configs/inference.json   ConfigParser workflow (a SupervisedEvaluator, ``evaluator_config``): the images of
                               --dataset_dir -> label maps in --output_dir
      models/model.pt          the network's weights, a tensor-only state dict (torch's weights-only loader reads it)
      models/*.pt              other tensors the method needs (OneShotSeg: the atlas on its working grid)
      scripts/                 transforms, inferer and network stock MONAI lacks: copies of the engine's own modules
                               (``copy_scripts``; imported from the bundle root, which monai.bundle puts on sys.path)
      docs/README.md, docs/license.txt

OUT must be new, empty, or an earlier export (recognised by that mark); it is written whole or not at all
(``atomic_directory``), never inside the model folder. The method's own part is in ``<method>.bundle_export``:
IncrementalLap (``lap``) models label RGB frames (PNG/JPEG/TIFF), OneShotSeg (``oneshot``) models 3D NIfTI scans,
pre-aligned to the model's atlas with its atlas prior, the labels mapped back onto each scan's own grid.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import ModuleType
from typing import Any

from distillseg.common.manifest_validation import read_valid_manifest
from distillseg.contract.atomic import OutputLock, atomic_directory
from distillseg.contract.errors import file_error
from distillseg.contract.manifest import LAP, ONESHOT
from distillseg.contract.outputs import check_apart, check_target, marked_folder, write_json

METADATA = "configs/metadata.json"
MONAI_BUNDLE = marked_folder("a MONAI Bundle", "monai-bundle", METADATA)
SCHEMA_URL = ("https://github.com/Project-MONAI/MONAI-extra-test-data/releases/download/0.8.1/"
              "meta_schema_20240725.json")
BUNDLE_VERSION = "1.0.0"


# What a bundle run needs besides MONAI, PyTorch and NumPy: fire is the command line of 'python -m monai.bundle',
# pytorch-ignite its evaluator; the method adds its image reader's package. The version this engine has, else the
# least MONAI takes.
_REQUIRED = {"pytorch-ignite": "0.4.11", "fire": "0.5"}
READERS = {"pillow": "10.0", "nibabel": "5.0"}


def _required_packages(reader: str) -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name, least in {reader: READERS[reader], **_REQUIRED}.items():
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = least
    return found


def _common_metadata(source: Path, reader: str) -> dict[str, Any]:
    """What every exported bundle's metadata says besides the model's own fields: versions, authorship, terms.
    ``reader``: the package (a key of ``READERS``) the bundle reads its images with."""
    import monai
    import numpy
    import torch

    from distillseg import __version__

    return {
        "schema": SCHEMA_URL,
        "version": BUNDLE_VERSION,
        "changelog": {BUNDLE_VERSION: f"exported by distillseg {__version__} from the model '{source.name}'"},
        "monai_version": monai.__version__,
        "pytorch_version": torch.__version__.split("+")[0],
        "numpy_version": numpy.__version__,
        "required_packages_version": _required_packages(reader),
        "authors": "the person or group who trained the model with OneShotSeg (distillseg); exported by distillseg",
        "copyright": "the model's trainer holds the rights to its weights; see docs/license.txt",
        "intended_use": "research only; not a medical device and not for diagnosis or treatment",
    }


def _readme(metadata: dict[str, Any], run_note: str) -> str:
    channels = metadata["network_data_format"]["outputs"]["pred"]["channel_def"]
    labels = "\n".join(f"| {value} | {name} |" for value, name in channels.items())
    return f"""# {metadata['name']}

{metadata['description']}

Exported from a OneShotSeg / distillseg model by `distillseg model export-bundle`; it runs with MONAI alone
(made with MONAI {metadata['monai_version']} and PyTorch {metadata['pytorch_version']}; running it also needs
{', '.join(metadata['required_packages_version'])}).
{metadata['intended_use'].capitalize()}.

## Labels (values in the output label maps)

| value | structure |
|---|---|
{labels}

## Run

```
python -m monai.bundle run --config_file configs/inference.json --meta_file configs/metadata.json \\
    --bundle_root . --dataset_dir INPUT_FOLDER --output_dir OUTPUT_FOLDER
```

{run_note} The GPU is used when there is one. Run it from any folder but one holding a `scripts` package of its
own: the bundle's `scripts/` is imported from the bundle root.

## Licence

See `license.txt`.
"""


LICENSE_NOTE = """The weights in models/model.pt were trained by the user of OneShotSeg who exported this bundle; the
terms under which they may be shared follow from that person's choice and from the licences of the images they
were trained on (for example CC BY 4.0 for the Dresden Surgical Anatomy Dataset, CC BY-NC-SA 4.0 for
Endoscapes; for a OneShotSeg model also its atlas, whose image and labels are in models/atlas.pt). Ask the model's
trainer before sharing it.

scripts/ and configs/ were written by distillseg, part of OneShotSeg, under the Apache License 2.0
(https://www.apache.org/licenses/LICENSE-2.0).
"""


def make_folders(folder: Path) -> None:
    """The bundle's ``configs``, ``models`` and ``scripts`` in the (empty, temporary) ``folder``."""
    for part in ("configs", "models", "scripts"):
        (folder / part).mkdir()


def save_tensors(path: Path, tensors: dict[str, Any]) -> None:
    """A tensor-only dict (a state dict) as a ``torch.save`` file that torch's weights-only loader reads.

    Through a handle: torch names the archive inside after a path it is given (and 'archive' for a handle or a path
    it cannot use), which would make the same model's file depend on where it was written."""
    import torch

    with open(path, "wb") as handle:
        torch.save({name: value.contiguous() for name, value in tensors.items()}, handle)


def write_config(folder: Path, config: dict[str, Any]) -> None:
    (folder / "configs" / "inference.json").write_text(json.dumps(config, indent=1) + "\n", encoding="utf-8")


_ENGINE_IMPORT = re.compile(r"^(\s*)from distillseg\.[\w.]*?(\w+) import ", re.MULTILINE)


def copy_scripts(folder: Path, modules: list[ModuleType]) -> None:
    """Copy the engine's ``modules`` into ``folder/scripts/`` under their own names, so the bundle computes with the
    engine's code itself; an import of another of them becomes a relative one (``from .geometry import Grid``). Each
    must import nothing else of distillseg (``RuntimeError`` at export otherwise: a bundle runs without it)."""
    names = {module.__name__.rsplit(".", 1)[1] for module in modules}
    for module in modules:
        text = Path(module.__file__).read_text(encoding="utf-8")
        text = _ENGINE_IMPORT.sub(lambda m: f"{m[1]}from .{m[2]} import " if m[2] in names else m[0], text)
        if re.search(r"^\s*(from|import) distillseg\b", text, re.MULTILINE):
            raise RuntimeError(f"{module.__name__} imports distillseg beyond {sorted(names)}; a bundle cannot run it")
        (folder / "scripts" / f"{module.__name__.rsplit('.', 1)[1]}.py").write_text(text, encoding="utf-8")
    (folder / "scripts" / "__init__.py").write_text('"""Transforms named by this bundle\'s configs."""\n',
                                                   encoding="utf-8")


def evaluator_config(network_def: dict[str, Any], datalist: str, preprocessing: list, inferer: dict[str, Any],
                     postprocessing: list, network: str = "$@network_def.to(@device)") -> dict[str, Any]:
    """``configs/inference.json``: a ``SupervisedEvaluator`` over the images ``datalist`` (an expression on
    ``@dataset_dir``) one per batch (images differ in size), with the weights of ``models/model.pt``; the ids are
    those MONAI Label's bundle apps read."""
    return {
        "imports": ["$import glob", "$import os"],
        "bundle_root": ".",
        "dataset_dir": "$@bundle_root + '/images'",
        "output_dir": "$@bundle_root + '/eval'",
        "device": "$torch.device('cuda:0' if torch.cuda.is_available() else 'cpu')",
        "network_def": network_def,
        "network": network,
        "datalist": datalist,
        "preprocessing": {"_target_": "Compose", "transforms": preprocessing},
        "dataset": {"_target_": "Dataset", "data": "@datalist", "transform": "@preprocessing"},
        "dataloader": {"_target_": "DataLoader", "dataset": "@dataset", "batch_size": 1, "shuffle": False,
                       "num_workers": 0},
        "inferer": inferer,
        "postprocessing": {"_target_": "Compose", "transforms": postprocessing},
        "handlers": [
            {"_target_": "CheckpointLoader", "load_path": "$@bundle_root + '/models/model.pt'",
             "load_dict": {"model": "@network"}, "map_location": "@device"},
            {"_target_": "StatsHandler", "iteration_log": False},
        ],
        "evaluator": {"_target_": "SupervisedEvaluator", "device": "@device", "val_data_loader": "@dataloader",
                      "network": "@network", "inferer": "@inferer", "postprocessing": "@postprocessing",
                      "val_handlers": "@handlers"},
        "initialize": ["$monai.utils.set_determinism(seed=0)"],
        "run": ["$@evaluator.run()"],
    }


def _write_common(folder: Path, metadata: dict[str, Any], run_note: str) -> None:
    with open(folder / METADATA, "w", encoding="utf-8") as handle:
        write_json(handle, metadata, "monai-bundle")  # the mark comes first, so a later export recognises it
    (folder / "docs").mkdir()
    (folder / "docs" / "README.md").write_text(_readme(metadata, run_note), encoding="utf-8")
    (folder / "docs" / "license.txt").write_text(LICENSE_NOTE, encoding="utf-8")


def export_bundle(args, progress) -> int:
    """The verb: check the model and OUT before any work, then write the bundle atomically."""
    model_dir, out = Path(args.model), Path(args.out)
    method = read_valid_manifest(model_dir)["method"]
    check_apart([out], [model_dir], folders=[out])
    check_target(out, MONAI_BUNDLE)
    # Each method's writer loads the model (weights checked against the manifest's SHA-256 and the network's
    # shapes) and returns (write(folder) -> its metadata fields, the image reader's package, the README's note).
    if method == LAP:
        from distillseg.lap.bundle_export import lap_bundle as method_bundle
    elif method == ONESHOT:
        from distillseg.oneshot.bundle_export import oneshot_bundle as method_bundle
    else:  # read_valid_manifest knows no other method
        raise file_error(model_dir, f"is a model of the method '{method}', which cannot be exported")
    write, reader, run_note = method_bundle(model_dir)
    with OutputLock(out), atomic_directory(out, MONAI_BUNDLE) as tmp:
        make_folders(tmp)
        metadata = {**_common_metadata(model_dir, reader), **write(tmp)}
        _write_common(tmp, metadata, run_note)
    progress.result(bundle=str(out), labels=metadata["network_data_format"]["outputs"]["pred"]["channel_def"],
                    run=f"python -m monai.bundle run --config_file {out / 'configs' / 'inference.json'} "
                        f"--meta_file {out / METADATA} --bundle_root {out} --dataset_dir IMAGES "
                        "--output_dir OUTPUT")
    return 0
