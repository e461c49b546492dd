"""`python -m parity ...`: see parity.cli."""

import sys

from .cli import main

sys.exit(main())
