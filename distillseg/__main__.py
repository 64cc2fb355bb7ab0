"""``python -m distillseg`` runs the command-line interface."""

from distillseg.contract import cancel

# Signals cancel from here on (before the heavier imports: a Ctrl-C while they load cancels like any other), but
# one that arrives before the CLI's error handling is running, even while the handlers are being installed, is
# only noted, and honoured inside it, so it ends in "Cancelled." rather than a traceback at the top level.
with cancel.uninterrupted(raise_after=False):
    cancel.install_handlers()
    from distillseg.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
