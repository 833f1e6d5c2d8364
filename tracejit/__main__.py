"""`python -m tracejit`: the command line (see tracejit/cli.py)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
