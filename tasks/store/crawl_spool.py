"""Reading a finished crawl's spool: totals for an extraction-only run, and paged flushes.

The crawl writes ``OUT/.xtract/crawl.parquet`` once, atomically, when it ends. The
seed's ``flush_crawl_metadata`` popped files off the extraction queue, so a flushed
file was never extracted; here a flush only reads the spool, from a cursor kept by
the caller, so every file is returned once and still extracted.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import pyarrow.compute as pc
import pyarrow.parquet as pq

from xtract_blocks.errors import CrawlError


class CrawlSpoolError(CrawlError):
    """The crawl spool is missing or was replaced by a newer crawl."""


def crawl_spool_totals(spool_path: str) -> dict[str, Any]:
    """Files and bytes of a finished crawl, in the shape the crawl task returns (for reuse by ``stage='xtract'``)."""
    if not os.path.isfile(spool_path):
        raise CrawlSpoolError(f"no crawl spool at {spool_path}: run a crawl (stage 'crawl' or 'all') first")
    table = pq.read_table(spool_path, columns=["size"])
    total = pc.sum(table.column("size")).as_py() or 0
    return {"files": table.num_rows, "bytes": int(total), "dirs": 0, "dirs_failed": 0, "symlinks_skipped": 0,
            "errors": [], "seconds": 0.0}


@dataclass
class SpoolCursor:
    """Position in one crawl spool; ``identity`` notices a spool rewritten by a later crawl."""

    offset: int = 0
    identity: tuple[int, int, int] | None = None


def spool_identity(path: str) -> tuple[int, int, int]:
    st = os.stat(path)
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def read_spool_page(spool_path: str, cursor: SpoolCursor, n: int) -> tuple[list[dict[str, Any]], bool]:
    """The next ``n`` files after ``cursor`` (advanced in place); returns (files, reached_end).

    Only the row groups overlapping the page are read, so paging through a
    million-file crawl costs one row group per call, not the whole file.
    """
    identity = spool_identity(spool_path)
    if cursor.identity is not None and cursor.identity != identity:
        raise CrawlSpoolError(f"{spool_path} was rewritten by a newer crawl of the same endpoint; "
                              "flush that crawl's id instead")
    cursor.identity = identity
    pf = pq.ParquetFile(spool_path)
    total = pf.metadata.num_rows
    files: list[dict[str, Any]] = []
    start = 0
    for rg in range(pf.metadata.num_row_groups):
        rows = pf.metadata.row_group(rg).num_rows
        end = start + rows
        if end > cursor.offset and len(files) < n:
            part = pf.read_row_group(rg).slice(max(0, cursor.offset - start)).to_pylist()
            take = part[: n - len(files)]
            files.extend(take)
            cursor.offset += len(take)
        start = end
        if len(files) >= n:
            break
    return files, cursor.offset >= total
