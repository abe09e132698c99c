"""``xtract report OUT [--html FILE]``: one self-contained HTML page about a metadata directory."""

from __future__ import annotations

import argparse
import os

from flows.cli import UsageError, positive_int

NAME = "report"
HELP = "write a self-contained HTML report (charts, top errors, sortable index) of a metadata directory"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("metadata_dir", metavar="OUT", help="a metadata directory written by `xtract run`")
    p.add_argument("--html", metavar="FILE", default=None, help="where to write the page (default OUT/report.html)")
    p.add_argument("--max-rows", type=positive_int, default=5000,
                   help="rows of the index in the page's table (default 5000; the failures come first)")


def run(args: argparse.Namespace) -> int:
    out = os.path.abspath(args.metadata_dir)
    if not os.path.exists(os.path.join(out, "index.parquet")):  # a file, or a dataset directory
        raise UsageError(f"no index.parquet in {out}: not a metadata directory of `xtract run`")
    if args.html and os.path.isdir(args.html):
        raise UsageError(f"--html names a directory, not a file: {args.html}")
    from flows.report import ReportError, build_report
    from tasks.units import human_bytes, human_count

    try:
        report = build_report(out, args.html, max_rows=args.max_rows)
    except (ReportError, OSError) as exc:
        raise UsageError(str(exc)) from None
    print(f"report: {report.path}  ({human_count(report.files)} files, {human_count(report.table_rows)} table "
          f"rows, {human_bytes(report.bytes_written)}, {report.seconds:.1f}s)")
    return 0
