"""`python -m quarterdeck` runs the command-line interface."""

from quarterdeck.cli import app

app()
