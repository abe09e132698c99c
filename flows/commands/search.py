"""``xtract search``: ranked full-text search over a metadata directory, with filters."""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, datetime

from flows.cli import UsageError, positive_int

NAME = "search"
HELP = "search the metadata of OUT: words, \"phrases\", key=value, AND/OR/NOT, word*; plus filters"
STATUSES = ("ok", "error", "unknown")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("query", nargs="?", default="", metavar="QUERY",
                   help="e.g. 'name=tas', 'temperature AND units=K', 'path:run1 csv'; empty lists by path")
    p.add_argument("--metadata-dir", "-o", required=True, metavar="OUT", help="a metadata directory of `xtract run`")
    p.add_argument("--extractor", help="only files handled by this extractor (e.g. netcdf, tabular)")
    p.add_argument("--ext", help="only files with this extension (nc, .csv, tar.gz)")
    p.add_argument("--status", choices=STATUSES, help="only files with this extraction outcome")
    p.add_argument("--min-size", type=int, metavar="BYTES", help="only files of at least BYTES")
    p.add_argument("--max-size", type=int, metavar="BYTES", help="only files of at most BYTES")
    p.add_argument("--newer-than", metavar="WHEN", help="modified at or after WHEN (ISO date or epoch seconds)")
    p.add_argument("--older-than", metavar="WHEN", help="modified before WHEN (ISO date or epoch seconds)")
    p.add_argument("--path-prefix", metavar="PREFIX", help="only paths starting with PREFIX")
    p.add_argument("--limit", "-n", type=positive_int, default=20, help="at most N results (default 20)")
    p.add_argument("--raw", action="store_true", help="pass QUERY to SQLite FTS5 unchanged")
    p.add_argument("--json", action="store_true", help="one JSON object per result (for `xtract download`)")


def run(args: argparse.Namespace) -> int:
    out = os.path.abspath(args.metadata_dir)
    if not os.path.isdir(out):
        raise UsageError(f"metadata dir does not exist: {out}")
    from tasks.store.search import RANK_WINDOW, SearchError, search

    try:
        hits = search(args.query, out, extractor=args.extractor, ext=args.ext, status=args.status,
                      min_size=args.min_size, max_size=args.max_size, newer_than=args.newer_than,
                      older_than=args.older_than, path_prefix=args.path_prefix, limit=args.limit, raw=args.raw)
    except SearchError as exc:
        raise UsageError(str(exc)) from None
    if not hits:
        print("no matches", file=sys.stderr)
        return 1
    if hits.windowed:
        print(f"note: more than {RANK_WINDOW} files match; the newest {RANK_WINDOW} were ranked "
              "(narrow the query or add filters for a full ranking)", file=sys.stderr)
    if args.json:
        for hit in hits:
            print(json.dumps(hit.as_dict(), ensure_ascii=False))
        return 0
    for hit in hits:
        when = datetime.fromtimestamp(hit.mtime, UTC).strftime("%Y-%m-%d") if hit.mtime else "-"
        print(f"{hit.path}\n    {hit.extractor or '-'} {hit.status or '-'} {hit.size if hit.size is not None else '-'}"
              f" bytes {when}" + (f"  score {hit.score:.2f}" if args.query else ""))
        if hit.snippet:
            print(f"    {hit.snippet}")
    return 0
