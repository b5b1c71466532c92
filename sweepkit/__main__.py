"""`python -m sweepkit` is the `sweepkit` command (workers start this way: no PATH needed)."""

from sweepkit.cli import main

main()
