"""Subcommands of `mlops`, one module each."""
