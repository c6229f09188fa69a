"""``python -m emo_utils``: the command line (see :mod:`emo_utils.cli`)."""

from .cli import main

raise SystemExit(main())
