"""``python -m distillseg`` runs the command-line interface."""

from distillseg.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
