"""Subcommands defined outside cli.py, registered there with ``cli.add_command``."""
