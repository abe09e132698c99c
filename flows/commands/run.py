"""``xtract run``: crawl PATHs as a local endpoint, extract, write metadata."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from typing import Any

from flows.cli import UsageError, check_writable_dir, positive_float, positive_int

NAME = "run"
HELP = "crawl PATHs, extract metadata, write OUT/index.parquet and OUT/groups/"
GROUPERS = ("file_is_group", "directory", "related")
EXECUTORS = ("local", "dask", "globus-compute")


def add_arguments(run: argparse.ArgumentParser) -> None:
    run.add_argument("paths", nargs="+", metavar="PATH", help="directories or files to crawl")
    run.add_argument("--metadata-dir", "-o", required=True, metavar="OUT", help="where metadata is written")
    run.add_argument("--grouper", choices=GROUPERS, default="file_is_group", help="how files become groups")
    run.add_argument("--workers", type=positive_int, default=None, help="extraction processes (default: all cores)")
    run.add_argument("--batch-size", type=positive_int, default=None, help="groups per worker call (default: auto)")
    run.add_argument("--time-limit", type=positive_float, default=120.0, help="seconds per group (default 120)")
    run.add_argument("--executor", choices=EXECUTORS, default="local", help="where extractors run")
    run.add_argument("--dask-address", metavar="ADDR", default=None,
                     help="scheduler of an existing Dask cluster, e.g. tcp://host:8786 (--executor dask; "
                     "default: a LocalCluster sized to this machine)")
    run.add_argument("--follow-symlinks", action="store_true", help="follow symbolic links (loop-safe)")
    run.add_argument("--exclude", action="append", default=[], metavar="GLOB",
                     help="skip paths matching GLOB at crawl time (repeatable; '.git', '__pycache__', '*.tmp'; "
                     "with a '/' it matches the path). OUT itself is never crawled")
    run.add_argument("--lock-timeout", type=float, default=600.0, metavar="S",
                     help="wait at most S seconds for another run writing OUT (default 600; 0: refuse at once)")
    run.add_argument("--json", action="store_true", help="print a JSON summary as the last line of stdout")
    run.add_argument("--quiet", "-q", action="store_true", help="no live progress (the summary still prints)")
    run.add_argument("--verbose", "-v", action="store_true", help="also print Prefect's own INFO log lines")


def check_args(args: argparse.Namespace) -> None:
    for p in args.paths:
        if not os.path.exists(p):
            raise UsageError(f"path does not exist: {p}")
        if not os.access(p, os.R_OK):
            raise UsageError(f"path is not readable: {p}")
    check_writable_dir(args.metadata_dir, "metadata dir")


def run(args: argparse.Namespace) -> int:
    check_args(args)
    if args.executor == "local":
        from tasks.pools.process import start_worker_server

        start_worker_server()  # the workers' imports run beside Prefect's, on the other core
    from flows.progress import make_display, print_summary, quiet_prefect_console

    if not args.verbose:
        quiet_prefect_console()  # before flows.endpoint_flow imports prefect and configures its logging
    from flows.endpoint_flow import xtract_endpoint
    from tasks.pools.options import ExtractionOptions
    from xtract_blocks import XtractEndpoint

    endpoint = XtractEndpoint(
        repo_type="local", dirs=[os.path.abspath(p) for p in args.paths], grouper=args.grouper,
        local_mdata_path=os.path.abspath(args.metadata_dir), follow_symlinks=args.follow_symlinks,
        exclude=list(args.exclude),
    )
    # progress on stdout; with --json it goes to stderr so stdout stays for the summary and the JSON line
    display = None if args.quiet else make_display(sys.stderr if args.json else sys.stdout)
    with display.running() if display else contextlib.nullcontext():
        options = ExtractionOptions(executor=args.executor, workers=args.workers, batch_size=args.batch_size,
                                    time_limit_s=args.time_limit, dask_address=args.dask_address)
        state = xtract_endpoint(endpoint, extraction=options, lock_timeout_s=args.lock_timeout, return_state=True)
    if not state.is_completed():
        print(f"xtract: run {state.name.lower()}: {state.message}", file=sys.stderr)
        return 1
    summary: dict[str, Any] = state.result()
    print_summary(summary, display)
    if args.json:
        keys = ("files_crawled", "bytes_crawled", "groups", "extracted", "failed", "unknown", "skipped",
                "metadata_dir", "flow_run_id", "seconds", "stage_seconds")
        print(json.dumps({k: summary[k] for k in keys}))
    return 0
