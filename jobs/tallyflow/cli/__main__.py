"""`python -m tallyflow.cli`: the same as the `tallyflow` command."""

import sys

from tallyflow.cli import main

sys.exit(main())
