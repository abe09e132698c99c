"""The concurrent-listing loop shared by the network crawlers (https, fsspec).

A crawler submits one listing job per directory to its thread pool; this drains
the finished ones, records unreadable directories in the crawl status (the crawl
goes on), submits the subdirectories found, and yields batches of whole
directories' files as they complete.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, wait
from typing import Any

from tasks.store.records import FileRecord

Listing = tuple[list[FileRecord], list[str]]


def drain_listings(pending: dict[Future[Any], str], status: Any, submit_dir: Callable[[str], None], *,
                   batch_size: int, batch: list[FileRecord] | None = None) -> Iterator[list[FileRecord]]:
    """Run ``pending`` (future -> directory) to exhaustion; ``submit_dir`` adds a subdirectory to it."""
    batch = batch if batch is not None else []
    while pending:
        done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
        for fut in done:
            where = pending.pop(fut)
            try:
                files, subdirs = fut.result()
            except Exception as exc:  # noqa: BLE001 - an unreadable listing is recorded, the crawl goes on
                status.add_error(where, exc)
                continue
            status.dirs += 1
            for sub in sorted(subdirs):
                submit_dir(sub)
            batch.extend(files)
            status.files += len(files)
            status.bytes += sum(f.size for f in files)
        if len(batch) >= batch_size:
            yield batch
            batch = []
    if batch:
        yield batch
