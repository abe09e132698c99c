"""``xtract download``: fetch the files of a crawl, or of a search, from their habitat to DEST."""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from typing import Any

from flows.cli import UsageError, check_writable_dir, positive_int

NAME = "download"
HELP = "fetch the files listed in OUT (all, or those matching --query/filters) to DEST, resuming partial files"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("dest", metavar="DEST", help="local directory; files land in DEST/<host or bucket>/<path>")
    p.add_argument("--metadata-dir", "-o", metavar="OUT", help="a metadata directory: its index lists the files")
    p.add_argument("--query", "-q", default="", help="only files matching this search (see `xtract search`)")
    p.add_argument("--extractor", help="only files handled by this extractor")
    p.add_argument("--ext", help="only files with this extension")
    p.add_argument("--status", choices=("ok", "error", "unknown"), help="only files with this outcome")
    p.add_argument("--limit", type=positive_int, default=None, help="at most N files of a search")
    p.add_argument("--paths-from", metavar="FILE",
                   help="read paths/URLs (one per line, or `xtract search --json` lines) from FILE, '-' = stdin")
    p.add_argument("--endpoint", metavar="BLOCK", help="XtractEndpoint block with the habitat's credentials")
    p.add_argument("--concurrency", "-j", type=positive_int, default=4, help="files in flight (default 4)")
    p.add_argument("--json", action="store_true", help="print the report as JSON on the last line")


def read_paths(source: str) -> list[tuple[str, int | None, float | None]]:
    fh = sys.stdin if source == "-" else open(source, encoding="utf-8")
    items = []
    try:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            if line.startswith("{"):
                row = json.loads(line)
                items.append((row["path"], row.get("size"), row.get("mtime")))
            else:
                items.append((line, None, None))
    finally:
        if fh is not sys.stdin:
            fh.close()
    return items


def select_items(args: argparse.Namespace) -> list[tuple[str, int | None, float | None]]:
    if args.paths_from:
        return read_paths(args.paths_from)
    if not args.metadata_dir:
        raise UsageError("name the files: --metadata-dir OUT (optionally with --query/filters) or --paths-from FILE")
    out = os.path.abspath(args.metadata_dir)
    filters = {"extractor": args.extractor, "ext": args.ext, "status": args.status}
    if args.query or any(filters.values()):
        from tasks.store.search import SearchError, search

        try:
            hits = search(args.query, out, limit=args.limit or 10**9, **filters)
        except SearchError as exc:
            raise UsageError(str(exc)) from None
        return [(h.path, h.size, h.mtime) for h in hits]
    if not os.path.exists(os.path.join(out, "index.parquet")):
        raise UsageError(f"{out} has no index.parquet: is it a metadata directory of `xtract run`?")
    from tasks.store.index import items_from_index

    return items_from_index(out)


class _Progress:
    """A rich bar on a terminal; otherwise a plain line per file (or per 5% for many files)."""

    def __init__(self) -> None:
        self.rich = sys.stderr.isatty()
        self.lock = threading.Lock()
        self.done = 0
        self.total = 0
        self.bar: Any = None
        self.task: Any = None

    def start(self, files: int, size: int) -> None:
        self.total = files
        if self.rich:
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )

            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                                TransferSpeedColumn(), TimeRemainingColumn(), transient=False)
            self.bar.start()
            self.task = self.bar.add_task(f"0/{files} files", total=size or None)

    def on_bytes(self, n: int) -> None:
        if self.bar is not None:
            self.bar.advance(self.task, n)

    def on_file(self, res: Any) -> None:
        with self.lock:
            self.done += 1
            if self.bar is not None:
                self.bar.update(self.task, description=f"{self.done}/{self.total} files")
                return
            step = max(1, self.total // 20) if self.total > 50 else 1
            if res.error or self.done % step == 0 or self.done == self.total:
                what = "FAILED " + res.error if res.error else ("present" if res.skipped else f"{res.bytes} bytes")
                print(f"[{self.done}/{self.total}] {res.source}: {what}", file=sys.stderr, flush=True)

    def stop(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def run(args: argparse.Namespace) -> int:
    dest = check_writable_dir(args.dest, "destination")
    items = select_items(args)
    if not items:
        print("nothing to download", file=sys.stderr)
        return 1
    from tasks.habitats import download_files
    from xtract_blocks.errors import DownloadError

    endpoint = None
    if args.endpoint:
        from xtract_blocks import XtractEndpoint

        try:
            endpoint = XtractEndpoint.load(args.endpoint)
        except ValueError as exc:
            raise UsageError(f"no XtractEndpoint block named {args.endpoint!r}: {exc}") from None
    progress = _Progress()
    started = time.perf_counter()
    try:
        report = download_files(items, dest, endpoint=endpoint, concurrency=args.concurrency,
                                on_file=progress.on_file, on_bytes=progress.on_bytes, on_total=progress.start)
    except DownloadError as exc:
        raise UsageError(str(exc)) from None
    finally:
        progress.stop()
    print(f"{report.fetched} fetched ({report.bytes} bytes, {report.resumed} resumed, {report.verified} checksums "
          f"verified), {report.skipped} already present, {report.failed} failed in "
          f"{time.perf_counter() - started:.1f}s -> {dest}")
    if args.json:
        print(json.dumps(report.as_dict()))
    return 1 if report.failed else 0
