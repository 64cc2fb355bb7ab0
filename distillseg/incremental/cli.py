"""``distillseg lap …`` verbs (IncrementalLap)."""

from __future__ import annotations


def add_lap_verbs(subparsers) -> None:
    lap = subparsers.add_parser("lap", help="IncrementalLap: laparoscopic frames, structures learned step by step")
    lap.add_subparsers(dest="verb", required=True, metavar="VERB")
