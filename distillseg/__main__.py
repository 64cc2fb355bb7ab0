"""``python -m distillseg`` runs the command-line interface."""

from distillseg.contract import cancel

cancel.install_handlers()  # before the heavier imports: a Ctrl-C while they load cancels like any other
with cancel.uninterrupted(raise_after=False):  # ... once they are loaded, inside the CLI's error handling
    from distillseg.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
