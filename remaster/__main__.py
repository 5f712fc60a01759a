"""``python -m remaster``: the command line (see :mod:`remaster.cli`)."""

from .cli import main

raise SystemExit(main())
