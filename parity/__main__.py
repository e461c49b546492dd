"""`python -m parity ...`: see parity.commands."""

import sys

from parity.commands import main

sys.exit(main())
