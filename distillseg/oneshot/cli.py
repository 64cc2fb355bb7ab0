"""``distillseg oneshot …`` verbs."""

from __future__ import annotations


def add_oneshot_verbs(subparsers) -> None:
    oneshot = subparsers.add_parser("oneshot", help="OneShotSeg: 3D scans, one labelled atlas")
    oneshot.add_subparsers(dest="verb", required=True, metavar="VERB")
