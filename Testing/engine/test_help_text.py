"""``--help`` of every verb as a person reads it: every option explained, ``(default: …)`` said once and only where
there is a default (never ``None``, never on a required option), defaults written as they are typed (``-1000 1000``,
not a Python tuple), and no option that does nothing for its verb (``--seed`` where nothing is random)."""

from __future__ import annotations

import argparse
import re

import pytest

from distillseg.cli import build_parser

NOTHING_RANDOM = {("oneshot", "segment"), ("oneshot", "evaluate"), ("lap", "segment"), ("lap", "evaluate"),
                  ("lap", "restore"), ("model", "info"), ("model", "export-bundle"), ("worker", None)}


def _verbs() -> dict[tuple[str, str | None], argparse.ArgumentParser]:
    verbs = {}
    methods = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    for method, parser in methods.choices.items():
        children = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not children:
            verbs[(method, None)] = parser
        for verb, child in (children[0].choices.items() if children else []):
            verbs[(method, verb)] = child
    return verbs


VERBS = _verbs()


def _option_help(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    """The help text of one option exactly as ``--help`` prints it (wrapping undone)."""
    formatter = parser._get_formatter()
    formatter.add_argument(action)
    return " ".join(formatter.format_help().split())


def test_every_verb_is_covered():
    assert len(VERBS) == 14, sorted(VERBS)


@pytest.mark.parametrize("verb", sorted(VERBS, key=str), ids=lambda v: " ".join(filter(None, v)))
def test_help_reads_well(verb):
    parser = VERBS[verb]
    parser.format_help()  # renders without error
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        text = _option_help(parser, action)
        name = "/".join(action.option_strings) or action.dest
        assert (action.help or "").strip(), f"{verb}: {name} is not explained"
        assert "(default: None)" not in text and "(default: )" not in text, (verb, text)
        assert text.count("(default:") + text.count("; default:") <= 1, (verb, text)
        assert not (action.required and "(default:" in text), (verb, text)
        assert not re.search(r"[(\[]-?\d[\d.]*, -?\d", text), (verb, text)  # a Python tuple or list
    options = {option for action in parser._actions for option in action.option_strings}
    assert ("--seed" in options) != (verb in NOTHING_RANDOM), f"{verb}: --seed where nothing is random, or missing"


def test_tuple_defaults_read_as_typed():
    train = VERBS[("oneshot", "train")].format_help()
    assert "(default: -1000 1000)" in " ".join(train.split())
    assert "--patch-size {I J K | whole}" in train and "[I J K | whole ...]" not in train
