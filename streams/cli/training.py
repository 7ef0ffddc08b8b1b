"""Subcommands: placeholder, filled in by its owner."""
