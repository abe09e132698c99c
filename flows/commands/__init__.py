"""Subcommands of ``xtract``: one module each, found by ``flows.cli``.

A command module defines NAME, HELP, ``add_arguments(parser)`` and ``run(args) -> int``.
Adding a command means adding a module here; cli.py does not change.
"""
