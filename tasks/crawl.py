"""Crawl stage: stream an endpoint's files into a spool, batch by batch.

The local crawler is an explicit-stack ``os.scandir`` walk: no recursion limit, one
``stat`` per file, symlinks not followed unless asked (and then loop-safe). An
unreadable directory is recorded in the crawl status and the walk goes on.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from extractors.detect import split_extension
from tasks.records import CRAWL_SCHEMA, FileRecord, SpoolWriter
from xtract_blocks import XtractEndpoint

MAX_RECORDED_ERRORS = 1000


@dataclass
class CrawlStatus:
    """What a crawl found and what it could not read."""

    files: int = 0
    bytes: int = 0
    dirs: int = 0
    dirs_failed: int = 0
    symlinks_skipped: int = 0
    errors: list[dict[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    def add_error(self, path: str, exc: BaseException | str) -> None:
        self.dirs_failed += 1
        if len(self.errors) < MAX_RECORDED_ERRORS:
            message = exc if isinstance(exc, str) else f"{type(exc).__name__}: {getattr(exc, 'strerror', None) or exc}"
            self.errors.append({"path": path, "error": str(message)})


class Crawler(Protocol):
    """Anything that streams FileRecords of an endpoint, one directory's files together."""

    status: CrawlStatus

    def iter_batches(self, dirs: list[str], *, batch_size: int) -> Iterator[list[FileRecord]]: ...


class LocalCrawler:
    """Walks directories of this machine."""

    def __init__(self, endpoint_id: str = "local", *, follow_symlinks: bool = False) -> None:
        self.endpoint_id = endpoint_id
        self.follow_symlinks = follow_symlinks
        self.status = CrawlStatus()

    def iter_batches(self, dirs: list[str], *, batch_size: int = 10_000) -> Iterator[list[FileRecord]]:
        started = time.perf_counter()
        batch: list[FileRecord] = []
        seen: set[tuple[int, int]] = set()
        follow = self.follow_symlinks
        ep = self.endpoint_id
        st = self.status
        stack: list[str] = []
        for d in reversed(dirs):
            root = os.path.abspath(os.path.expanduser(d))
            if os.path.isfile(root):  # a single file is a one-file crawl
                try:
                    s = os.stat(root)
                    batch.append(FileRecord(root, s.st_size, s.st_mtime, split_extension(root), ep,
                                            stat.filemode(s.st_mode)))
                    st.files += 1
                    st.bytes += s.st_size
                except OSError as exc:
                    st.add_error(root, exc)
            else:
                stack.append(root)
        while stack:
            current = stack.pop()
            if follow:
                try:
                    s = os.stat(current)
                except OSError as exc:
                    st.add_error(current, exc)
                    continue
                key = (s.st_dev, s.st_ino)
                if key in seen:
                    continue
                seen.add(key)
            try:
                with os.scandir(current) as it:
                    entries = list(it)
            except OSError as exc:
                st.add_error(current, exc)
                continue
            st.dirs += 1
            subdirs = []
            for entry in entries:
                try:
                    if entry.is_dir(follow_symlinks=follow):
                        subdirs.append(entry.path)
                        continue
                    if not follow and entry.is_symlink():
                        st.symlinks_skipped += 1
                        continue
                    s = entry.stat(follow_symlinks=follow)
                except OSError:
                    st.symlinks_skipped += entry.is_symlink()
                    continue
                if not stat.S_ISREG(s.st_mode):
                    continue
                batch.append(FileRecord(entry.path, s.st_size, s.st_mtime, split_extension(entry.name), ep,
                                        stat.filemode(s.st_mode)))
                st.files += 1
                st.bytes += s.st_size
            subdirs.sort(reverse=True)
            stack.extend(subdirs)
            if len(batch) >= batch_size:
                yield batch
                batch = []
        if batch:
            yield batch
        st.seconds = time.perf_counter() - started


CrawlerFactory = Callable[[XtractEndpoint], Crawler]
#: repo_type -> crawler factory; other habitats add themselves here.
CRAWLERS: dict[str, CrawlerFactory] = {
    "local": lambda ep: LocalCrawler(ep.globus_ep_id or "local", follow_symlinks=ep.follow_symlinks),
}


def get_crawler(endpoint: XtractEndpoint) -> Crawler:
    try:
        factory = CRAWLERS[endpoint.repo_type]
    except KeyError:
        raise ValueError(
            f"repo_type {endpoint.repo_type!r} has no crawler; known: {sorted(CRAWLERS)}"
        ) from None
    return factory(endpoint)


def crawl_to_spool(crawler: Crawler, dirs: list[str], spool_path: str, *, batch_size: int = 10_000,
                   on_batch: Callable[[CrawlStatus], None] | None = None) -> CrawlStatus:
    """Stream a crawl into a Parquet spool; the listing is never held whole."""
    with SpoolWriter(spool_path, CRAWL_SCHEMA) as spool:
        for batch in crawler.iter_batches(dirs, batch_size=batch_size):
            spool.write_rows(batch)
            if on_batch is not None:
                on_batch(crawler.status)
    return crawler.status


@task(name="crawl", cache_policy=NO_CACHE, task_run_name="crawl-{endpoint_name}")
def crawl(endpoint: XtractEndpoint, spool_path: str, *, endpoint_name: str = "endpoint",
          batch_size: int = 10_000) -> dict[str, Any]:
    """Crawl the endpoint's dirs into ``spool_path``; returns the crawl status."""
    logger = get_run_logger()
    crawler = get_crawler(endpoint)
    status = crawl_to_spool(crawler, list(endpoint.dirs), spool_path, batch_size=batch_size)
    logger.info("crawled %d files (%d bytes) in %d dirs in %.1fs; %d dirs unreadable",
                status.files, status.bytes, status.dirs, status.seconds, status.dirs_failed)
    for err in status.errors[:20]:
        logger.warning("could not list %s: %s", err["path"], err["error"])
    return {
        "files": status.files, "bytes": status.bytes, "dirs": status.dirs, "dirs_failed": status.dirs_failed,
        "symlinks_skipped": status.symlinks_skipped, "errors": status.errors, "seconds": status.seconds,
    }
