"""Option values, tried as a new user would type them: each case runs the real CLI and is refused by the parser in
one sentence (exit 2, before any file is read) or, for values that are odd but meaningful, works.

Values that must be positive (iterations, batch sizes, checkpoint intervals, learning rates, windows), threads,
seeds, spacings, probabilities and pairs, for both methods; argparse's own errors (a missing or unknown option) end
in the same sentence. Every case failed before the options had types (see the commit that added this file).
"""

from __future__ import annotations

import json

from bad_input_env import env  # noqa: F401  (the matrix's fixture)
from bad_input_env import matrix_test, with_option
from cli_contract import Invocation
from distillseg.common.bundle import load_bundle

OPTIONS = "options"


def _option_case(name: str, verb: str, option: str, values: tuple, fragments: tuple = ()):
    """A case that gives ``option`` the ``values`` on an otherwise good command of ``verb`` (``train`` or
    ``lap_train``): refused by the parser, in a sentence naming the option."""

    def build(env, tmp):
        argv = env.train(tmp / "m") if verb == "train" else env.lap_train(env.lap.demo, tmp / "m")
        return Invocation(with_option(argv, option, *values), fragments=(option, *fragments), outputs=[tmp / "m"])

    build.__name__ = name
    return build


OPTION_CASES = [_option_case(*case) for case in [
    ("train_zero_iterations", "train", "--iterations", ("0",), ("at least 1",)),
    ("train_negative_iterations", "train", "--iterations", ("-3",), ("at least 1",)),
    ("train_zero_batch_size", "train", "--batch-size", ("0",)),
    ("train_zero_batch_pairs", "train", "--batch-pairs", ("0",)),
    ("train_zero_checkpoint_interval", "train", "--checkpoint-every", ("0",)),
    ("train_negative_threads", "train", "--threads", ("-2",)),
    ("train_more_threads_than_cores", "train", "--threads", ("100000",)),
    ("train_zero_learning_rate", "train", "--lr", ("0",), ("above 0",)),
    ("train_nan_learning_rate", "train", "--augmenter-lr", ("nan",), ("not a finite number",)),
    ("train_spacing_in_words", "train", "--spacing", ("2 millimetres",), ("not a voxel size",)),
    ("train_spacing_leaving_one_voxel", "train", "--spacing", ("50",), ("too coarse", "use at most")),
    ("train_patch_of_16_voxels", "train", "--patch-size", ("16", "16", "16"), ("from 32",)),
    ("train_reversed_ct_window", "train", "--ct-window", ("400", "-100"), ("LOW below HIGH",)),
    ("train_probability_above_one", "train", "--appearance", ("1.5",)),
    ("train_huge_seed", "train", "--seed", ("99999999999999999999",)),
    ("train_deep_supervision_beyond_the_network", "train", "--deep-supervision", ("7",)),
    ("train_hint_adapter_without_the_hint", "train", "--hint-adapter", (), ("the hint is off", "--hint-weight")),
    ("lap_zero_batch_size", "lap_train", "--batch-size", ("0",)),
    ("lap_zero_iterations", "lap_train", "--iterations", ("0",)),
    ("lap_zero_checkpoint_interval", "lap_train", "--checkpoint-every", ("0",)),
    ("lap_sample_steps_beyond_the_schedule", "lap_train", "--sample-steps", ("5000",), ("from 1 to 1000",)),
    ("lap_repeated_structure", "lap_train", "--classes", ("stomach,colon,stomach",), ("more than once",)),
    ("lap_structure_name_with_a_path", "lap_train", "--classes", ("../stomach",), ("not a plain name",)),
    ("lap_zoom_of_nothing", "lap_train", "--zoom", ("0",), ("from 0.25 to 1",)),
    ("lap_crop_off_the_32_grid", "lap_train", "--crop", ("100", "64")),
    ("lap_crop_larger_than_the_frame", "lap_train", "--crop", ("512", "512"), ("larger than the working size",)),
    ("lap_focus_above_one", "lap_train", "--focus", ("1.5",), ("from 0 to 1",)),
    ("lap_focus_on_whole_frames", "lap_train", "--focus", ("0.5",), ("whole frames", "--zoom below 1 or --crop")),
    ("lap_class_balance_above_one", "lap_train", "--class-balance", ("2",), ("from 0 to 1",)),
]]


def train_spacing_with_unit(env, tmp):
    """``2mm`` was a traceback; a unit is accepted. 3 mm on the 24³ phantom (1.5/2 mm voxels) also gives a working
    grid that used to be 16 voxels wide, which crashed the network."""
    argv = with_option(env.train(tmp / "m"), "--spacing", "3mm")
    argv = with_option(argv, "--augmenter-iterations", "0")
    argv = with_option(argv, "--iterations", "1")
    argv = with_option(argv, "--refine-iterations", "0")

    def check():
        grid = load_bundle(tmp / "m", "oneshot").manifest["preprocessing"]["grid"]
        assert min(grid["shape"]) >= 32 and abs(grid["affine"][0][0]) in (3.0, -3.0), grid

    return Invocation(argv, exit_code=0, check=check)


def segment_zero_window(env, tmp):
    argv = env.segment(env.oneshot.case["scans"][0], tmp / "o.nii.gz", "--sliding-window", "0", "0", "0")
    return Invocation(argv, fragments=("--sliding-window",), outputs=[tmp / "o.nii.gz"])


def segment_memory_of_zero(env, tmp):
    argv = env.segment(env.oneshot.case["scans"][0], tmp / "o.nii.gz", "--max-memory", "0G")
    return Invocation(argv, fragments=("--max-memory", "not a memory size"), outputs=[tmp / "o.nii.gz"])


def segment_negative_registration_margin(env, tmp):
    argv = env.segment(env.oneshot.case["scans"][0], tmp / "o.nii.gz", "--registration-margin", "-2")
    return Invocation(argv, fragments=("--registration-margin", "from 0 to 1000"), outputs=[tmp / "o.nii.gz"])


def lap_learn_missing_option(env, tmp):
    argv = ["lap", "learn", "--model", env.lap.model, "--data", env.lap.demo, "--out", tmp / "m2"]
    return Invocation(argv, fragments=("The following arguments are required: --new-classes",),
                      outputs=[tmp / "m2"])


def lap_learn_unknown_option(env, tmp):
    argv = ["lap", "learn", "--model", env.lap.model, "--data", env.lap.demo, "--new-classes", "liver",
            "--out", tmp / "m2", "--strategy", "ours", "--replay-frames", "4"]
    return Invocation(argv, fragments=("Unrecognized arguments: --replay-frames 4",), outputs=[tmp / "m2"])


def lap_learn_class_balance_above_one(env, tmp):
    argv = ["lap", "learn", "--model", env.lap.model, "--data", env.lap.demo, "--new-classes", "liver",
            "--out", tmp / "m2", "--class-balance", "1.5"]
    return Invocation(argv, fragments=("--class-balance", "from 0 to 1"), outputs=[tmp / "m2"])


def lap_confidence_above_one(env, tmp):
    argv = ["lap", "sample", "--model", env.lap.model, "--out", tmp / "s", "--confidence", "1.5"]
    return Invocation(argv, fragments=("--confidence",), outputs=[tmp / "s"])


def label_colour_out_of_range(env, tmp):
    names = tmp / "names.json"
    names.write_text(json.dumps({"1": {"name": "liver", "color": [300, -4, 12]}}), encoding="utf-8")
    argv = env.train(tmp / "m", None, None, None, "--label-names", names)
    return Invocation(argv, fragments=("colour", "0..255"), names=names, outputs=[tmp / "m"])


def label_colour_table_out_of_range(env, tmp):
    table = tmp / "colours.ctbl"
    table.write_text("# value name r g b a\n1 liver 128 64 999 255\n", encoding="utf-8")
    argv = env.train(tmp / "m", None, None, None, "--label-names", table)
    return Invocation(argv, fragments=("line 2", "0..255"), names=table, outputs=[tmp / "m"])


CASES = {OPTIONS: [*OPTION_CASES, train_spacing_with_unit, segment_zero_window, segment_memory_of_zero,
                   segment_negative_registration_margin,
                   lap_learn_missing_option, lap_learn_unknown_option, lap_learn_class_balance_above_one,
                   lap_confidence_above_one,
                   label_colour_out_of_range, label_colour_table_out_of_range]}
test_bad_input = matrix_test(CASES)
