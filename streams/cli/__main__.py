"""`python -m streams.cli` runs the `propensity` command."""

from streams.cli import main

main()
