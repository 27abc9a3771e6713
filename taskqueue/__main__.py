"""python -m taskqueue: see taskqueue/cli.py and docs/cli.md."""

import sys

from .cli import main

sys.exit(main())
