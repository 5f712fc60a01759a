"""``python -m remaster.finetune``: see :mod:`remaster.finetune.cli`."""

from .cli import main

raise SystemExit(main())
