"""``xtract run``: crawl PATHs as a local endpoint, extract, write metadata."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import stat
import sys
from typing import Any

from flows.cli import EXIT_STATUS_UNREPORTED, UsageError, check_writable_dir, positive_float, positive_int
from xtract_blocks.roots import distinct_roots

NAME = "run"
HELP = "crawl PATHs, extract metadata, write OUT/index.parquet and OUT/groups/"
GROUPERS = ("file_is_group", "directory", "related")
EXECUTORS = ("local", "dask", "globus-compute")


def nonnegative_float(text: str) -> float:
    """A number of seconds that may be 0 (``--lock-timeout 0``: refuse at once)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value >= 0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


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
    run.add_argument("--lock-timeout", type=nonnegative_float, default=600.0, metavar="S",
                     help="wait at most S seconds for another run writing OUT (default 600; 0: refuse at once)")
    run.add_argument("--no-retry-failed", dest="retry_failed", action="store_false",
                     help="do not extract again the groups that failed in an earlier run (default: retry them)")
    run.add_argument("--shards", type=positive_int, default=None, metavar="N",
                     help="split the crawl into N shards run as flow runs on --work-pool's workers (any hosts that "
                     "see PATH and OUT), then merge them into OUT; needs a Prefect server (PREFECT_API_URL)")
    run.add_argument("--work-pool", default="xtract-process", metavar="POOL",
                     help="work pool of the shard runs (default xtract-process; created when missing)")
    run.add_argument("--json", action="store_true", help="print a JSON summary as the last line of stdout")
    run.add_argument("--quiet", "-q", action="store_true", help="no live progress (the summary still prints)")
    run.add_argument("--verbose", "-v", action="store_true", help="also print Prefect's own INFO log lines")


_KINDS = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"))


def check_paths(paths: list[str]) -> list[str]:
    """Each PATH a readable directory or regular file; returns them normalized, each file covered once.

    A PATH given twice, or inside another PATH (symlinks resolved), is dropped with a note:
    crawling it again would index its files twice.
    """
    for p in paths:
        try:
            st = os.stat(p)
        except FileNotFoundError:
            raise UsageError(f"path does not exist: {p}") from None
        except OSError as exc:
            raise UsageError(f"path cannot be read: {p} ({exc.strerror or exc})") from None
        if not (stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode)):
            kind = next((name for test, name in _KINDS if test(st.st_mode)), "not a file")
            raise UsageError(f"path is not a directory or a regular file: {p} ({kind})")
        if not os.access(p, os.R_OK):
            raise UsageError(f"path is not readable: {p}")
    kept, dropped = distinct_roots(paths)
    for path, cover in dropped:
        print(f"xtract: {path} is already covered by {cover}: crawled once", file=sys.stderr)
    return kept


def check_workers(workers: int | None) -> int | None:
    """--workers above what this machine can use is clamped, with one line saying so."""
    from tasks.pools.options import max_local_workers  # stdlib and pydantic only

    limit = max_local_workers()
    if workers is not None and workers > limit:
        print(f"xtract: --workers {workers} is more than this machine can use ({os.cpu_count()} cores, "
              f"memory for {limit} workers); using {limit}", file=sys.stderr)
        return limit
    return workers


def check_args(args: argparse.Namespace) -> None:
    args.paths = check_paths(args.paths)
    check_writable_dir(args.metadata_dir, "metadata dir")
    if args.executor == "local" or (args.executor == "dask" and not args.dask_address):
        args.workers = check_workers(args.workers)
    if args.batch_size is not None:
        from tasks.pools.options import MAX_BATCH_SIZE

        if args.batch_size > MAX_BATCH_SIZE:
            raise UsageError(f"--batch-size {args.batch_size} is above the limit of {MAX_BATCH_SIZE} groups per call")


def own_server_if_needed() -> Any:
    """Start the Prefect server this run needs (in a session of its own), or None when one is configured.

    Called after Prefect's settings can be read; the server starts while the flow's imports
    run and is stopped at exit, after Prefect has flushed its logs and events to it.
    """
    from prefect.settings import get_current_settings

    settings = get_current_settings()
    if settings.api.url or not settings.server.ephemeral.enabled:
        return None
    import atexit

    from flows.prefect_server import OwnedServer

    server = OwnedServer().start()
    atexit.register(server.stop)
    return server


def exit_without_prefect_drain(code: int, server: Any) -> None:
    """End the process now: Prefect drains its log and event queues at exit with no time limit,
    which against an API that is gone never ends. Everything of ours is already on disk."""
    if server is not None:
        server.stop()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


class RunEnd:
    """Listens to the run: keeps its summary, and keeps Prefect's console quiet once the API is gone.

    The summary arrives before the engine proposes the run's final state, which is the step
    a lost API breaks: with it the CLI still prints what was done. Called on the flow's thread
    (``run`` events) or a status thread (``api`` events).
    """

    def __init__(self, server: Any, *, verbose: bool) -> None:
        self.server = server
        self.verbose = verbose
        self.summary: dict[str, Any] | None = None

    def __call__(self, event: Any) -> None:
        if event.stage == "run" and event.phase == "end":
            self.summary = event.data.get("summary")
            if self.server is not None and (self.server.restarts or not self.server.healthy()):
                self.server.wait_back()  # deliberately blocking: our restarted server then takes the final state
        elif event.stage == "api" and not event.data.get("reachable", True) and not self.verbose:
            from flows.progress import mute_prefect_console

            mute_prefect_console()  # Prefect's services would each report the lost connection; we say it once


def print_outcome(summary: dict[str, Any], display: Any, as_json: bool) -> None:
    """The summary (a table or lines) and, with --json, the JSON line last on stdout."""
    from flows.progress import print_summary

    print_summary(summary, display)
    if as_json:
        keys = ("files_crawled", "bytes_crawled", "dirs_failed", "files_excluded", "groups", "extracted", "failed",
                "unknown", "skipped", "metadata_dir", "flow_run_id", "seconds", "stage_seconds")
        print(json.dumps({k: summary.get(k) for k in keys}))


def run(args: argparse.Namespace) -> int:
    check_args(args)
    if args.executor == "local":
        from tasks.pools.process import start_worker_server

        start_worker_server()  # the workers' imports run beside Prefect's, on the other core
    from flows.progress import make_display, quiet_prefect_console

    if not args.verbose:
        quiet_prefect_console()  # before flows.endpoint_flow imports prefect and configures its logging
    if args.shards:
        from prefect.settings import get_current_settings

        if not get_current_settings().api.url:
            raise UsageError("--shards runs shards on a work pool's workers, which need a Prefect server they "
                             "share: start one (prefect server start) and set PREFECT_API_URL")
    server = own_server_if_needed()
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.endpoint_flow import xtract_endpoint
    from tasks.observers import observing
    from tasks.pools.options import ExtractionOptions
    from tasks.status import api_answers, publish_failures, unreachable_api_error
    from xtract_blocks import XtractEndpoint

    endpoint = XtractEndpoint(
        repo_type="local", dirs=list(args.paths), grouper=args.grouper,
        local_mdata_path=os.path.abspath(args.metadata_dir), follow_symlinks=args.follow_symlinks,
        exclude=list(args.exclude),
    )
    api = server.wait_ready() if server is not None else None
    # progress on stdout; with --json it goes to stderr so stdout stays for the summary and the JSON line
    display = None if args.quiet else make_display(sys.stderr if args.json else sys.stdout)
    settings = temporary_settings(updates={PREFECT_API_URL: api}) if api else contextlib.nullcontext()
    ended = RunEnd(server, verbose=args.verbose)
    try:
        with settings, observing(ended), display.running() if display else contextlib.nullcontext():
            options = ExtractionOptions(executor=args.executor, workers=args.workers, batch_size=args.batch_size,
                                        time_limit_s=args.time_limit, dask_address=args.dask_address,
                                        retry_failed=args.retry_failed, lock_timeout_s=args.lock_timeout)
            if args.shards:
                from flows.sharded_flow import xtract_sharded

                state = xtract_sharded(endpoint, shards=args.shards, work_pool=args.work_pool, extraction=options,
                                       return_state=True)
            else:
                state = xtract_endpoint(endpoint, extraction=options, return_state=True)
    except Exception as exc:
        if not unreachable_api_error(exc):
            raise
        if ended.summary is None:
            print(f"xtract: lost the Prefect API ({type(exc).__name__}: {exc}); the run could not report its "
                  "status. What was extracted is journalled in the metadata directory: rerun the same command to "
                  "finish", file=sys.stderr)
        else:  # the work is done; only the run's final state (and part of its progress) never reached the API
            print_outcome(ended.summary, display, args.json)
            print(f"xtract: warning: lost the Prefect API at {api or PREFECT_API_URL.value()} during the run; the "
                  "metadata is complete, but the run's status could not be reported (the Prefect UI shows it "
                  "unfinished)", file=sys.stderr)
        exit_without_prefect_drain(EXIT_STATUS_UNREPORTED, server)
    if not state.is_completed():
        print(f"xtract: run {state.name.lower()}: {state.message}", file=sys.stderr)
        return 1
    summary: dict[str, Any] = state.result()
    print_outcome(summary, display, args.json)
    restarts = server.restarts if server is not None else 0
    dropped = publish_failures()
    if restarts or dropped:
        why = f"the Prefect server this run started died {restarts} time(s) and was restarted" if restarts else \
            f"{dropped} status update(s) could not be published"
        print(f"xtract: warning: {why}; the metadata is complete, the Prefect UI may miss part of this run's "
              "progress", file=sys.stderr)
        if not api_answers(api or PREFECT_API_URL.value()):
            exit_without_prefect_drain(EXIT_STATUS_UNREPORTED, server)
        return EXIT_STATUS_UNREPORTED
    return 0
