"""`python -m led_ref`: the layout explorer's command line (see `led_ref.explore.cli`)."""

import sys

from .explore.cli import main

if __name__ == "__main__":
    sys.exit(main())
