"""The local habitat's crawler: an explicit-stack ``os.scandir`` walk of this machine's directories.

No recursion limit, one ``stat`` per file, symlinks not followed unless asked (and then
loop-safe). An unreadable directory is recorded in the crawl status and the walk goes on.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pyarrow as pa

from tasks.habitats.base import CrawlStatus
from tasks.habitats.local_walk import WalkCounters, walk_one
from tasks.habitats.local_walk_helper import HelperWalker
from tasks.store.records import FileRecord, crawl_batch
from xtract_blocks.roots import distinct_roots

#: A helper walker process joins once the walk has seen this many files (it costs ~30 ms to start)...
HELPER_AFTER_FILES = 5_000
#: ...and has at least this many directories pending to share with it.
HELPER_MIN_PENDING_DIRS = 4
Columns = tuple[list[str], list[int], list[float], list[int], list[int]]


class LocalCrawler:
    """Walks directories of this machine.

    Each directory is opened once and listed with ``os.scandir(fd)``: entry types come
    from ``d_type`` (no syscall) and each file costs one ``fstatat`` relative to the
    directory fd, not a stat of its full path. Files come out as columns, so a crawl
    of a million files builds no per-file Python objects beyond the values themselves.
    """

    def __init__(self, endpoint_id: str = "local", *, follow_symlinks: bool = False,
                 parallel: bool | None = None) -> None:
        self.endpoint_id = endpoint_id
        self.follow_symlinks = follow_symlinks
        #: Walk large trees with a helper process too (default: when the machine has more than one core).
        self.parallel = (os.cpu_count() or 1) > 1 if parallel is None else parallel
        self.helper_used = False
        self.status = CrawlStatus()

    def iter_columns(self, dirs: list[str], *, batch_size: int = 10_000) -> Iterator[Columns]:
        """(paths, sizes, mtimes, modes, inodes) column lists; a directory's files are never split.

        Once the walk has shown the tree is large (HELPER_AFTER_FILES files, several
        directories pending), every other pending directory goes to a helper walker
        process (tasks/habitats/local_walk.py) and both walk in parallel; its batches are yielded as
        they arrive, each holding whole directories.
        """
        started = time.perf_counter()
        follow = self.follow_symlinks
        st = self.status
        counters = WalkCounters()
        seen: set[tuple[int, int]] | None = set() if follow else None
        paths: list[str] = []
        sizes: list[int] = []
        mtimes: list[float] = []
        modes: list[int] = []
        inodes: list[int] = []
        stack: list[str] = []
        helper: HelperWalker | None = None
        roots, _covered = distinct_roots(dirs)  # a root given twice or inside another is crawled once
        for root in reversed(roots):
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
                inodes.append(s.st_ino)
            else:
                stack.append(root)
        try:
            while stack:
                subdirs = walk_one(stack.pop(), follow, seen, paths, sizes, mtimes, modes, inodes, counters)
                if subdirs:
                    stack.extend(subdirs)
                st.dirs_pending = len(stack)
                if (helper is None and self.parallel and len(stack) >= HELPER_MIN_PENDING_DIRS
                        and st.files + len(paths) >= HELPER_AFTER_FILES):
                    helper = HelperWalker(stack[0::2], follow, batch_size)
                    stack = stack[1::2]
                    self.helper_used = True
                if helper is not None and helper.ready():
                    yield from self._account(helper.next_batches())
                if len(paths) >= batch_size:
                    yield self._account_one((paths, sizes, mtimes, modes, inodes))
                    paths, sizes, mtimes, modes, inodes = [], [], [], [], []
            if paths:
                yield self._account_one((paths, sizes, mtimes, modes, inodes))
            if helper is not None:
                yield from self._account(helper.drain())
                counters.merge(helper.counters)
        finally:
            if helper is not None:
                helper.close()
            st.dirs += counters.dirs
            st.symlinks_skipped += counters.symlinks_skipped
            for path, message in counters.errors:
                st.add_error(path, message)
            st.dirs_pending = 0
            st.seconds = time.perf_counter() - started

    def _account_one(self, cols: Columns) -> Columns:
        self.status.files += len(cols[0])
        self.status.bytes += sum(cols[1])
        return cols

    def _account(self, batches: Iterator[Columns]) -> Iterator[Columns]:
        for cols in batches:
            yield self._account_one(cols)

    def iter_record_batches(self, dirs: list[str], *, batch_size: int = 10_000) -> Iterator[pa.RecordBatch]:
        """CRAWL_SCHEMA record batches: what ``crawl_to_spool`` writes, with no per-file objects."""
        for paths, sizes, mtimes, modes, inodes in self.iter_columns(dirs, batch_size=batch_size):
            yield crawl_batch(paths, sizes, mtimes, modes, self.endpoint_id, inodes)

    def iter_batches(self, dirs: list[str], *, batch_size: int = 10_000) -> Iterator[list[FileRecord]]:
        """The Crawler protocol: FileRecord lists (for callers that want records, not columns)."""
        for batch in self.iter_record_batches(dirs, batch_size=batch_size):
            yield [FileRecord(*row) for row in zip(*batch.to_pydict().values(), strict=True)]
