"""Crawl stage: stream an endpoint's files into a spool, batch by batch.

The local crawler is an explicit-stack ``os.scandir`` walk: no recursion limit, one
``stat`` per file, symlinks not followed unless asked (and then loop-safe). An
unreadable directory is recorded in the crawl status and the walk goes on.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import pyarrow as pa
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from extractors.fspath import to_text
from tasks.observers import crawl_fields, crawl_observer, notify
from tasks.records import CRAWL_SCHEMA, FileRecord, SpoolWriter, crawl_batch, write_in_background
from xtract_blocks import XtractEndpoint

MAX_RECORDED_ERRORS = 1000
#: Directories are opened (then listed and stat'ed relative to the fd); O_DIRECTORY refuses a file.
_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)
Columns = tuple[list[str], list[int], list[float], list[int]]


@dataclass
class CrawlStatus:
    """What a crawl found and what it could not read."""

    files: int = 0
    bytes: int = 0
    dirs: int = 0
    dirs_failed: int = 0
    symlinks_skipped: int = 0
    dirs_pending: int = 0  # listed but not yet walked: progress displays show it
    errors: list[dict[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    def add_error(self, path: str, exc: BaseException | str) -> None:
        self.dirs_failed += 1
        if len(self.errors) < MAX_RECORDED_ERRORS:
            message = exc if isinstance(exc, str) else f"{type(exc).__name__}: {getattr(exc, 'strerror', None) or exc}"
            self.errors.append({"path": to_text(path), "error": to_text(str(message))})


class Crawler(Protocol):
    """Anything that streams FileRecords of an endpoint, one directory's files together."""

    status: CrawlStatus

    def iter_batches(self, dirs: list[str], *, batch_size: int) -> Iterator[list[FileRecord]]: ...


class LocalCrawler:
    """Walks directories of this machine.

    Each directory is opened once and listed with ``os.scandir(fd)``: entry types come
    from ``d_type`` (no syscall) and each file costs one ``fstatat`` relative to the
    directory fd, not a stat of its full path. Files come out as columns, so a crawl
    of a million files builds no per-file Python objects beyond the values themselves.
    """

    def __init__(self, endpoint_id: str = "local", *, follow_symlinks: bool = False) -> None:
        self.endpoint_id = endpoint_id
        self.follow_symlinks = follow_symlinks
        self.status = CrawlStatus()

    def iter_columns(self, dirs: list[str], *, batch_size: int = 10_000) -> Iterator[Columns]:
        """(paths, sizes, mtimes, modes) column lists; a directory's files are never split."""
        started = time.perf_counter()
        paths: list[str] = []
        sizes: list[int] = []
        mtimes: list[float] = []
        modes: list[int] = []
        seen: set[tuple[int, int]] = set()
        follow = self.follow_symlinks
        st = self.status
        stack: list[str] = []
        for d in reversed(dirs):
            root = os.path.abspath(os.path.expanduser(d))
            if os.path.isfile(root):  # a single file is a one-file crawl
                try:
                    s = os.stat(root)
                except OSError as exc:
                    st.add_error(root, exc)
                    continue
                paths.append(root)
                sizes.append(s.st_size)
                mtimes.append(s.st_mtime)
                modes.append(s.st_mode)
                st.files += 1
                st.bytes += s.st_size
            else:
                stack.append(root)
        while stack:
            current = stack.pop()
            try:
                fd = os.open(current, _DIR_FLAGS)
            except OSError as exc:
                st.add_error(current, exc)
                continue
            try:
                if follow:
                    s = os.fstat(fd)
                    key = (s.st_dev, s.st_ino)
                    if key in seen:
                        continue
                    seen.add(key)
                n_before = len(paths)
                try:
                    subdirs = self._list(fd, current, paths, sizes, mtimes, modes)
                except OSError as exc:
                    del paths[n_before:], sizes[n_before:], mtimes[n_before:], modes[n_before:]
                    st.add_error(current, exc)
                    continue
            finally:
                os.close(fd)
            st.dirs += 1
            st.files += len(paths) - n_before
            st.bytes += sum(sizes[n_before:])
            subdirs.sort(reverse=True)
            stack.extend(subdirs)
            st.dirs_pending = len(stack)
            if len(paths) >= batch_size:
                yield paths, sizes, mtimes, modes
                paths, sizes, mtimes, modes = [], [], [], []
        if paths:
            yield paths, sizes, mtimes, modes
        st.seconds = time.perf_counter() - started

    def _list(self, fd: int, current: str, paths: list[str], sizes: list[int], mtimes: list[float],
              modes: list[int]) -> list[str]:
        """Append one directory's regular files to the columns; returns its subdirectories.

        Comprehensions rather than a loop with per-entry branches: this is the crawl's
        hot path, and it runs at the speed of ``find`` only without per-entry overhead.
        """
        follow = self.follow_symlinks
        prefix = current if current.endswith("/") else current + "/"
        with os.scandir(fd) as it:
            entries = list(it)
        try:
            files = [e for e in entries if e.is_file(follow_symlinks=follow)]
        except OSError:  # a symlink loop (ELOOP) or an unreadable target: sort entries one by one
            files = [e for e in entries if _entry_is(e, "file", follow)]
        try:  # is_file() already resolved symlinks as asked, so stat() may follow
            stats = [e.stat() for e in files]
        except OSError:  # an entry vanished or cannot be stat'ed: keep the others
            stats, kept = [], []
            for e in files:
                try:
                    stats.append(e.stat())
                    kept.append(e)
                except OSError:
                    self.status.symlinks_skipped += e.is_symlink()
            files = kept
        paths.extend([prefix + e.name for e in files])
        sizes.extend([s.st_size for s in stats])
        mtimes.extend([s.st_mtime for s in stats])
        modes.extend([s.st_mode for s in stats])
        subdirs: list[str] = []
        if len(files) < len(entries):
            for e in entries:
                if _entry_is(e, "file", follow):
                    continue
                if _entry_is(e, "dir", follow):
                    subdirs.append(prefix + e.name)
                elif e.is_symlink():  # not followed, or dangling
                    self.status.symlinks_skipped += 1
        return subdirs

    def iter_record_batches(self, dirs: list[str], *, batch_size: int = 10_000) -> Iterator[pa.RecordBatch]:
        """CRAWL_SCHEMA record batches: what ``crawl_to_spool`` writes, with no per-file objects."""
        for paths, sizes, mtimes, modes in self.iter_columns(dirs, batch_size=batch_size):
            yield crawl_batch(paths, sizes, mtimes, modes, self.endpoint_id)

    def iter_batches(self, dirs: list[str], *, batch_size: int = 10_000) -> Iterator[list[FileRecord]]:
        """The Crawler protocol: FileRecord lists (for callers that want records, not columns)."""
        for batch in self.iter_record_batches(dirs, batch_size=batch_size):
            yield [FileRecord(*row) for row in zip(*batch.to_pydict().values(), strict=True)]


def _entry_is(entry: os.DirEntry[str], kind: str, follow: bool) -> bool:
    """``is_file``/``is_dir`` that say False where following a link fails (loops, unreadable targets)."""
    try:
        return entry.is_file(follow_symlinks=follow) if kind == "file" else entry.is_dir(follow_symlinks=follow)
    except OSError:
        return False


def _globus_crawler(ep: XtractEndpoint) -> Crawler:
    from tasks.globus_crawl import globus_crawler_for  # imported late: it builds on this module

    return globus_crawler_for(ep)


def _http_crawler(ep: XtractEndpoint) -> Crawler:
    from tasks.http_crawl import http_crawler_for  # imported late: it builds on this module

    return http_crawler_for(ep)


def _fsspec_crawler(ep: XtractEndpoint) -> Crawler:
    from tasks.fsspec_crawl import fsspec_crawler_for  # imported late: it builds on this module

    return fsspec_crawler_for(ep)


CrawlerFactory = Callable[[XtractEndpoint], Crawler]
#: repo_type -> crawler factory; other habitats add themselves here.
CRAWLERS: dict[str, CrawlerFactory] = {
    "local": lambda ep: LocalCrawler(ep.globus_ep_id or "local", follow_symlinks=ep.follow_symlinks),
    "globus": _globus_crawler,
    "https": _http_crawler,
    "fsspec": _fsspec_crawler,
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
    columns = getattr(crawler, "iter_columns", None)
    with SpoolWriter(spool_path, CRAWL_SCHEMA) as spool:
        if columns is not None:  # the fast path: column lists, converted and written by a second thread
            ep = getattr(crawler, "endpoint_id", "local")
            write_in_background(spool, columns(dirs, batch_size=batch_size), lambda c: crawl_batch(*c, ep),
                                on_item=None if on_batch is None else lambda: on_batch(crawler.status))
        else:
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
    notify("crawl", endpoint_name, "start", dirs=list(endpoint.dirs))
    status = crawl_to_spool(crawler, list(endpoint.dirs), spool_path, batch_size=batch_size,
                            on_batch=crawl_observer(endpoint_name))
    notify("crawl", endpoint_name, "end", **crawl_fields(status), seconds=status.seconds)
    logger.info("crawled %d files (%d bytes) in %d dirs in %.1fs; %d dirs unreadable",
                status.files, status.bytes, status.dirs, status.seconds, status.dirs_failed)
    for err in status.errors[:20]:
        logger.warning("could not list %s: %s", err["path"], err["error"])
    return {
        "files": status.files, "bytes": status.bytes, "dirs": status.dirs, "dirs_failed": status.dirs_failed,
        "symlinks_skipped": status.symlinks_skipped, "errors": status.errors, "seconds": status.seconds,
    }
