"""`python -m verification`: the operator's command line (see verification/cli.py)."""

import sys

from verification.cli import main

sys.exit(main())
