"""The manifest schema (``distillseg.contract.manifest_schema``) as the engine applies it with ``jsonschema``:
one sentence naming the manifest and the first key that is wrong, the trained bundles of both methods valid, and a
missing ``jsonschema`` an installation problem said in one sentence, not a traceback. The CLI cases (every key the
code reads, damaged by hand) are ``test_bad_model_matrix``; generated ones are ``test_fuzz_cli``."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from distillseg.common.manifest_validation import read_valid_manifest
from distillseg.contract.errors import UserError
from manifests import hand_made_bundle
from tiny_models import lap_fixture, oneshot_fixture


@pytest.mark.parametrize("change, sentence", [
    ({"class_values": [0, "1"]}, "manifest key 'class_values.1': must be of type integer (found str)"),
    ({"labels": [{"value": 1, "name": "liver", "color": [300, 0, 0]}]},
     "manifest key 'labels.0.color.0': 300 is greater than the maximum of 255"),
    ({"networks": {"student": {"in_channels": 1, "out_channels": 2, "channels": [4], "bias": True},
                   "augmenter": {}}},
     "manifest key 'networks.student': Additional properties are not allowed ('bias' was unexpected)"),
    ({"preprocessing": "2mm"}, "manifest key 'preprocessing': must be of type object (found str)"),
    ({"class_values": [0]}, "manifest key 'class_values': [0] is too short"),
])
def test_a_manifest_off_the_schema_is_one_sentence_naming_the_key(tmp_path, change, sentence):
    hand_made_bundle(tmp_path / "model", "oneshot")
    manifest = json.loads((tmp_path / "model" / "manifest.json").read_text(encoding="utf-8"))
    (tmp_path / "model" / "manifest.json").write_text(json.dumps({**manifest, **change}), encoding="utf-8")
    with pytest.raises(UserError) as raised:
        read_valid_manifest(tmp_path / "model", "oneshot")
    assert str(raised.value).startswith(f"{tmp_path / 'model' / 'manifest.json'}: {sentence}")
    assert str(raised.value).endswith("(the manifest was edited or damaged; export the model again from where it "
                                      "was made).")


def test_trained_bundles_of_both_methods_are_valid(tmp_path_factory):
    for model, method in ((oneshot_fixture(tmp_path_factory).model, "oneshot"),
                          (lap_fixture(tmp_path_factory).model, "lap")):
        assert read_valid_manifest(model, method)["method"] == method


_WITHOUT_JSONSCHEMA = textwrap.dedent("""
    import sys
    class Blocker:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] == "jsonschema":
                raise ImportError("jsonschema is not installed in this test")
    sys.meta_path.insert(0, Blocker())
    from distillseg.common.manifest_validation import read_valid_manifest
    from distillseg.contract.errors import UserError
    from distillseg.contract.manifest import read_manifest
    print(read_manifest(sys.argv[1], "oneshot")["method"])
    try:
        read_valid_manifest(sys.argv[1], "oneshot")
    except UserError as exc:
        print(exc)
""")


def test_without_jsonschema_the_contract_reads_and_the_engine_says_what_is_missing(tmp_path):
    hand_made_bundle(tmp_path / "model", "oneshot")
    done = subprocess.run([sys.executable, "-c", _WITHOUT_JSONSCHEMA, str(tmp_path / "model")], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    method, sentence = done.stdout.splitlines()
    assert method == "oneshot" and sentence.startswith("The engine needs the Python package 'jsonschema'")
