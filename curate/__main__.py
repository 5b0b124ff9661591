"""``python -m curate``: the command line."""

from curate.frontends.cli import main

main()
