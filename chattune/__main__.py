"""`python -m chattune` runs the CLI."""

import sys

from chattune.cli import main

sys.exit(main())
