"""Globus crawler: concurrent breadth-first listing of a collection with Transfer ``operation_ls``.

A listing is one HTTP round trip of tens to hundreds of milliseconds, so the crawl
is latency-bound: several directories are listed at once (a bounded thread pool,
one TransferClient per thread, since a requests session is not shared across
threads). Each job lists one whole directory (paging limit/offset while
``has_next_page``), so a directory's files stay contiguous in the output, as the
group stage needs. Retries on 429/5xx/network errors are globus-sdk's RetryConfig,
which honours Retry-After; a listing error that persists is recorded in
``CrawlStatus.errors`` and the crawl goes on. Batches stream out: the crawler holds
only the directory queue and at most ``concurrency`` finished listings.
"""

from __future__ import annotations

import posixpath
import stat
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from datetime import datetime
from typing import Any

import globus_sdk
from globus_sdk.transport import RetryCheckResult, RetryConfig, RetryContext

from extractors.detect import split_extension
from tasks.habitats.base import CrawlStatus
from tasks.store.records import FileRecord
from xtract_blocks.credentials import GlobusCredentials
from xtract_blocks.errors import ConfigurationError

#: The Transfer service's cap on entries per ls call.
MAX_PAGE = 100_000
DEFAULT_CONCURRENCY = 12
#: Listing failures that will not change on retry (a directory too large to list, a path that is a file).
PERMANENT_LISTING_CODES = ("SizeLimit", "NotDirectory")
#: One listing job's result: the directory's files, its subdirectories, whether it was a directory.
Listing = tuple[list[FileRecord], list[str], bool]


def _no_retry_on_permanent_listing_error(ctx: RetryContext) -> RetryCheckResult:
    """A 502 'too large' or 'not a directory' is an answer, not a transient failure."""
    resp = ctx.response
    if resp is not None and resp.status_code == 502:
        try:
            code = str(resp.json().get("code", ""))
        except ValueError:
            return RetryCheckResult.no_decision
        if any(c in code for c in PERMANENT_LISTING_CODES):
            return RetryCheckResult.do_not_retry
    return RetryCheckResult.no_decision


def crawl_retry_config(*, max_retries: int = 6, max_sleep: float = 30.0,
                       backoff: Callable[[RetryContext], float] | None = None) -> RetryConfig:
    """The crawler's retry policy: globus-sdk's defaults (Retry-After on 429/503, backoff on 5xx and
    network errors) with more patience, and no retry of permanent listing errors."""
    config = RetryConfig(max_retries=max_retries, max_sleep=max_sleep)
    if backoff is not None:  # a custom backoff still yields to the server's Retry-After
        config.backoff = lambda ctx: ctx.backoff if ctx.backoff is not None else backoff(ctx)
    config.checks.register_check(_no_retry_on_permanent_listing_error)
    return config


def parse_last_modified(value: str | None) -> float:
    """Transfer's ``last_modified`` ('2023-12-18 16:52:50+00:00', second precision) as a POSIX time."""
    if not value:
        return 0.0
    return datetime.fromisoformat(value).timestamp()


def filemode_of(permissions: str | None) -> str | None:
    """'0644' -> '-rw-r--r--', the same form the local crawler records."""
    if not permissions:
        return None
    try:
        return stat.filemode(stat.S_IFREG | int(permissions, 8))
    except ValueError:
        return permissions


def describe_error(exc: BaseException) -> str:
    """A short, secret-free error line for the crawl status."""
    if isinstance(exc, globus_sdk.GlobusAPIError):
        first = (exc.message or "").strip().splitlines()[:1]
        return f"HTTP {exc.http_status} {exc.code}: {first[0] if first else ''}".rstrip(": ")
    if isinstance(exc, globus_sdk.NetworkError):
        return f"NetworkError: {type(exc.exc).__name__}"
    return f"{type(exc).__name__}: {exc}"


class GlobusCrawler:
    """Streams FileRecords of a Globus collection; same contract as LocalCrawler."""

    def __init__(self, credentials: GlobusCredentials, endpoint_id: str, *, concurrency: int = DEFAULT_CONCURRENCY,
                 page_size: int = MAX_PAGE, follow_symlinks: bool = False,
                 retry_config: Callable[[], RetryConfig] = crawl_retry_config,
                 http_timeout: float = 60.0) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.credentials = credentials
        self.endpoint_id = endpoint_id
        self.concurrency = concurrency
        self.page_size = min(max(1, page_size), MAX_PAGE)
        self.follow_symlinks = follow_symlinks
        self.retry_config = retry_config
        self.http_timeout = http_timeout
        self.status = CrawlStatus()
        self._local = threading.local()
        self._calls_lock = threading.Lock()
        self.listing_calls = 0

    def _client(self) -> globus_sdk.TransferClient:
        client = getattr(self._local, "client", None)
        if client is None:
            client = self.credentials.get_transfer_client(retry_config=self.retry_config(),
                                                          http_timeout=self.http_timeout)
            self._local.client = client
        return client

    def list_dir(self, path: str) -> list[dict[str, Any]]:
        """Every entry of one directory, page by page."""
        client = self._client()
        entries: list[dict[str, Any]] = []
        offset = 0
        while True:
            page = client.operation_ls(self.endpoint_id, path=path, limit=self.page_size, offset=offset)
            with self._calls_lock:
                self.listing_calls += 1
            data = page["DATA"]
            entries.extend(data)
            if not page.get("has_next_page") or not data:
                return entries
            offset += len(data)

    def _split(self, path: str, entries: list[dict[str, Any]]) -> tuple[list[FileRecord], list[str]]:
        files: list[FileRecord] = []
        subdirs: list[str] = []
        for e in entries:
            kind = e.get("type")
            child = posixpath.join(path, e["name"])
            if e.get("link_target") and (kind == "dir" or not self.follow_symlinks):
                # a symlinked directory has no inode to detect loops through Transfer: never followed
                self.status.symlinks_skipped += 1
                continue
            if kind == "dir":
                subdirs.append(child)
            elif kind == "file":
                files.append(FileRecord(child, int(e.get("size") or 0), parse_last_modified(e.get("last_modified")),
                                        split_extension(e["name"]), self.endpoint_id,
                                        filemode_of(e.get("permissions"))))
        subdirs.sort()
        return files, subdirs

    def _listing(self, path: str) -> Listing:
        return (*self._split(path, self.list_dir(path)), True)

    def _list_root_or_file(self, path: str) -> Listing:
        """A root may name a file: list its parent and keep that one entry."""
        try:
            return self._listing(path)
        except globus_sdk.TransferAPIError as exc:
            if "NotDirectory" not in str(exc.code):
                raise
        parent, name = posixpath.split(path.rstrip("/"))
        entries = [e for e in self.list_dir(parent or "/") if e["name"] == name]
        files, _ = self._split(parent or "/", entries)
        if not files:
            raise FileNotFoundError(path)
        return files, [], False

    def iter_batches(self, dirs: list[str], *, batch_size: int = 10_000) -> Iterator[list[FileRecord]]:
        started = time.perf_counter()
        st = self.status
        pending: deque[tuple[str, bool]] = deque((d.rstrip("/") or "/", True) for d in dirs)
        batch: list[FileRecord] = []
        in_flight: dict[Future[Listing], str] = {}
        with ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="globus-ls") as pool:
            try:
                while pending or in_flight:
                    while pending and len(in_flight) < self.concurrency:
                        path, is_root = pending.popleft()
                        job = self._list_root_or_file if is_root else self._listing
                        in_flight[pool.submit(job, path)] = path
                    done, _ = wait(list(in_flight), return_when=FIRST_COMPLETED)
                    for fut in sorted(done, key=lambda f: in_flight[f]):
                        path = in_flight.pop(fut)
                        try:
                            files, subdirs, was_dir = fut.result()
                        except (globus_sdk.GlobusError, FileNotFoundError) as exc:
                            st.add_error(path, describe_error(exc))
                            continue
                        st.dirs += was_dir
                        st.files += len(files)
                        st.bytes += sum(f.size for f in files)
                        batch.extend(files)
                        pending.extend((d, False) for d in subdirs)
                    if len(batch) >= batch_size:
                        yield batch
                        batch = []
            finally:
                for fut in in_flight:
                    fut.cancel()
        if batch:
            yield batch
        st.seconds = time.perf_counter() - started


def globus_crawler_for(endpoint: Any) -> GlobusCrawler:
    """CRAWLERS factory for repo_type 'globus' (an XtractEndpoint with a collection and credentials)."""
    if not endpoint.globus_ep_id:
        raise ConfigurationError("repo_type 'globus' needs XtractEndpoint.globus_ep_id (the collection to crawl)")
    if endpoint.credentials is None:
        raise ConfigurationError("repo_type 'globus' needs XtractEndpoint.credentials (a GlobusCredentials block)")
    return GlobusCrawler(endpoint.credentials, endpoint.globus_ep_id, follow_symlinks=endpoint.follow_symlinks)
