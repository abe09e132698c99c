"""``xtract validate OUT [--files N]``: check a metadata directory against the output contract."""

from __future__ import annotations

import argparse
import sys

from flows.cli import positive_int

NAME = "validate"
HELP = "check a metadata directory against the output contract (exit 0, or 1 with each violation on stderr)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("metadata_dir", metavar="OUT", help="a metadata directory written by `xtract run`")
    p.add_argument("--files", type=positive_int, default=None, help="the number of files the run crawled")


def run(args: argparse.Namespace) -> int:
    from tasks.store.validate import validate_metadata_dir

    problems = validate_metadata_dir(args.metadata_dir, expected_files=args.files)
    for line in problems:
        print(f"xtract validate: {line}", file=sys.stderr)
    if problems:
        return 1
    print(f"{args.metadata_dir}: matches the output contract")
    return 0
