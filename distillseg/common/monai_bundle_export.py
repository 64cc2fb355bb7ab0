"""``distillseg model export-bundle MODEL_DIR OUT``: a model as a MONAI Bundle, the folder MONAI's own tools load
without distillseg (``python -m monai.bundle run``; its config ids are those MONAI Label's bundle apps read)::

    OUT/
      configs/metadata.json    MONAI bundle metadata (schema meta_schema_20240725): versions, task, labels as the
                               output's channel_def; its first key marks the folder as this engine's export
      configs/inference.json   ConfigParser workflow: frames of --dataset_dir -> label maps in --output_dir
      models/model.pt          the network's weights, a tensor-only state dict (torch's weights-only loader reads it)
      scripts/                 transforms stock MONAI lacks (imported from the bundle root, which monai.bundle
                               puts on sys.path)
      docs/README.md, docs/license.txt

OUT must be new, empty, or an earlier export (recognised by that mark); it is written whole or not at all
(``atomic_directory``), never inside the model folder. The method's own part is in ``<method>.bundle_export``;
IncrementalLap (``lap``) models are supported, OneShotSeg models not yet.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from distillseg.common.manifest_validation import read_valid_manifest
from distillseg.contract.atomic import OutputLock, atomic_directory
from distillseg.contract.errors import file_error
from distillseg.contract.manifest import LAP
from distillseg.contract.outputs import check_apart, check_target, marked_folder, write_json

METADATA = "configs/metadata.json"
MONAI_BUNDLE = marked_folder("a MONAI Bundle", "monai-bundle", METADATA)
SCHEMA_URL = ("https://github.com/Project-MONAI/MONAI-extra-test-data/releases/download/0.8.1/"
              "meta_schema_20240725.json")
BUNDLE_VERSION = "1.0.0"


# What a bundle run needs besides MONAI, PyTorch and NumPy: Pillow reads the frames; fire is the command line of
# 'python -m monai.bundle', pytorch-ignite its evaluator. The version this engine has, else the least MONAI takes.
_REQUIRED = {"pillow": "10.0", "pytorch-ignite": "0.4.11", "fire": "0.5"}


def _required_packages() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name, least in _REQUIRED.items():
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = least
    return found


def _common_metadata(source: Path) -> dict[str, Any]:
    """What every exported bundle's metadata says besides the model's own fields: versions, authorship, terms."""
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
        "required_packages_version": _required_packages(),
        "authors": "the person or group who trained the model with OneShotSeg (distillseg); exported by distillseg",
        "copyright": "the model's trainer holds the rights to its weights; see docs/license.txt",
        "intended_use": "research only; not a medical device and not for diagnosis or treatment",
    }


def _readme(metadata: dict[str, Any]) -> str:
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
    --bundle_root . --dataset_dir FRAMES_FOLDER --output_dir OUTPUT_FOLDER
```

Every PNG/JPEG/TIFF frame in `FRAMES_FOLDER` becomes `OUTPUT_FOLDER/<name>_seg.png`, a grey label map of the
frame's size. The GPU is used when there is one. Run it from any folder but one holding a `scripts` package of its
own: the bundle's `scripts/` is imported from the bundle root.

## Licence

See `license.txt`.
"""


LICENSE_NOTE = """The weights in models/model.pt were trained by the user of OneShotSeg who exported this bundle; the
terms under which they may be shared follow from that person's choice and from the licences of the frames they
were trained on (for example CC BY 4.0 for the Dresden Surgical Anatomy Dataset, CC BY-NC-SA 4.0 for
Endoscapes). Ask the model's trainer before sharing it.

scripts/ and configs/ were written by distillseg, part of OneShotSeg, under the Apache License 2.0
(https://www.apache.org/licenses/LICENSE-2.0).
"""


def _write_common(folder: Path, metadata: dict[str, Any]) -> None:
    with open(folder / METADATA, "w", encoding="utf-8") as handle:
        write_json(handle, metadata, "monai-bundle")  # the mark comes first, so a later export recognises it
    (folder / "docs").mkdir()
    (folder / "docs" / "README.md").write_text(_readme(metadata), encoding="utf-8")
    (folder / "docs" / "license.txt").write_text(LICENSE_NOTE, encoding="utf-8")


def export_bundle(args, progress) -> int:
    """The verb: check the model and OUT before any work, then write the bundle atomically."""
    model_dir, out = Path(args.model), Path(args.out)
    manifest = read_valid_manifest(model_dir)
    if manifest["method"] != LAP:
        raise file_error(model_dir, "is a OneShotSeg model; export to a MONAI Bundle supports IncrementalLap "
                                    "models only so far")
    check_apart([out], [model_dir], folders=[out])
    check_target(out, MONAI_BUNDLE)
    from distillseg.lap.bundle_export import write_lap_bundle
    from distillseg.lap.model_bundle import load_lap_model

    model = load_lap_model(model_dir)  # weights checked against the manifest's SHA-256 and the network's shapes
    with OutputLock(out), atomic_directory(out, MONAI_BUNDLE) as tmp:
        metadata = {**_common_metadata(model_dir), **write_lap_bundle(model, tmp)}
        _write_common(tmp, metadata)
    progress.result(bundle=str(out), labels=metadata["network_data_format"]["outputs"]["pred"]["channel_def"],
                    run=f"python -m monai.bundle run --config_file {out / 'configs' / 'inference.json'} "
                        f"--meta_file {out / METADATA} --bundle_root {out} --dataset_dir FRAMES "
                        "--output_dir OUTPUT")
    return 0
