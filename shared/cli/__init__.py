"""The ``wfe`` command: validate, run, list and operate workflows (``main.py``), its
output (``format.py``) and the store operations it shares with the dev server (``ops.py``)."""

from shared.cli.main import main

__all__ = ["main"]
