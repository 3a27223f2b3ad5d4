"""`python -m tallyflow.cli`: the same as the `tallyflow` command."""

from tallyflow.cli import console

console()
