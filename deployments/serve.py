"""Serve the per-endpoint flow without a work pool: ``python deployments/serve.py [xtract serve options]``.

The same as ``xtract serve``; kept here so deployments/ holds every way of deploying.
"""

from __future__ import annotations

import sys

from flows.cli import main

if __name__ == "__main__":
    sys.exit(main(["serve", *sys.argv[1:]]))
