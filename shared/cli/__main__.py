"""``python -m shared.cli``: the ``wfe`` command."""

from shared.cli.main import main

raise SystemExit(main())
