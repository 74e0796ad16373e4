"""``python -m genarch`` runs the command line."""

import sys

from genarch.cli import main

sys.exit(main())
