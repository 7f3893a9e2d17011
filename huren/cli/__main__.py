"""``python -m huren.cli``: the same as the ``huren`` console script."""

from huren.cli import main

raise SystemExit(main())
