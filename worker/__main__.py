"""`python -m worker --help`: the reference worker's command line."""

import sys

from .cli import main

sys.exit(main())
