"""``xtract query "SQL" -o OUT [--json|--csv]``: SQL over the files and metadata facts of a metadata directory."""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from flows.cli import UsageError

NAME = "query"
HELP = "run SQL (DuckDB) over the tables files (index.parquet) and facts (one row per metadata leaf) of OUT"
#: Widest cell in the text table; --json and --csv print values whole.
MAX_CELL = 60


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("sql", metavar="SQL",
                   help="e.g. \"SELECT extension, count(*) n, sum(size) bytes FROM files GROUP BY 1 ORDER BY 3 DESC\"")
    p.add_argument("--metadata-dir", "-o", required=True, metavar="OUT", help="a metadata directory of `xtract run`")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="print one JSON list of row objects")
    fmt.add_argument("--csv", action="store_true", help="print CSV with a header row")
    p.add_argument("--no-refresh", action="store_true",
                   help="do not bring the facts up to date with the journal first (they are after every run)")


def _plain(value: Any) -> Any:
    """A JSON-safe form of a DuckDB value (dates as ISO text, NaN as null, decimals as numbers)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def _cell(value: Any) -> str:
    text = "" if value is None else str(_plain(value))
    text = text.replace("\n", " ")
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 1] + "…"


def print_table(columns: list[str], rows: list[tuple[Any, ...]]) -> None:
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    numeric = [all(isinstance(row[i], int | float | Decimal) or row[i] is None for row in rows) and rows
               for i in range(len(columns))]

    def line(values: list[str]) -> str:
        return "  ".join(v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric, strict=True))

    print(line(columns).rstrip())
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print(line(row).rstrip())
    print(f"({len(rows)} row{'s' if len(rows) != 1 else ''})", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    out = os.path.abspath(args.metadata_dir)
    if not os.path.isdir(out):
        raise UsageError(f"metadata dir does not exist: {out}")
    if not args.sql.strip():
        raise UsageError("the SQL statement is empty")
    from tasks.store.query import run_query
    from xtract_blocks.errors import SearchError

    try:
        result = run_query(out, args.sql, refresh=not args.no_refresh)
    except SearchError as exc:
        raise UsageError(str(exc)) from None
    if args.json:
        print(json.dumps([{k: _plain(v) for k, v in r.items()} for r in result.records()], ensure_ascii=False))
    elif args.csv:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(result.columns)
        writer.writerows([_plain(v) for v in row] for row in result.rows)
    else:
        print_table(result.columns, result.rows)
    return 0
