"""`python -m cc_storeplugin` runs the CLI."""

from cc_storeplugin.cli import run_local

run_local()
