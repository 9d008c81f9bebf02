"""``python -m mdsync``: the same command line as the ``mdsync`` script."""

from mdsync.cli import main

raise SystemExit(main())
