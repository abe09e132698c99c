"""A crawl's flush queue: files handed out while the crawl runs, each once, to any client or process.

The seed's ``flush_crawl_metadata`` popped files off its in-memory queue as the crawl
filled it. Here the crawl appends every batch it writes to a SQLite file in the
endpoint's state (``EndpointState.flush_queue(crawl_id)``), and a flush takes the next
``n`` rows past a cursor stored in the same file, in one ``BEGIN IMMEDIATE``
transaction: two clients (or processes) flushing one crawl never get the same file.
Unlike the seed, a flushed file is still extracted: the queue is a copy of the listing,
not the extraction's work list.
"""

from __future__ import annotations

import json
import os
import sqlite3
from typing import Any

from xtract_blocks.errors import CrawlError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (seq INTEGER PRIMARY KEY, record TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class FlushQueueError(CrawlError):
    """A flush queue that cannot be read (missing crawl, damaged file)."""


class FlushQueue:
    """One crawl's queue. The crawl ``put``s and ``finish``es; flushers ``take``."""

    def __init__(self, path: str, *, create: bool = False) -> None:
        if not create and not os.path.isfile(path):
            raise FlushQueueError(f"no flush queue at {path}")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        self.path = path
        self.db = sqlite3.connect(path, isolation_level=None, timeout=30.0, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(_SCHEMA)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> FlushQueue:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def put(self, rows: list[dict[str, Any]]) -> None:
        """Append one crawl batch (one transaction)."""
        with self.db:
            self.db.execute("BEGIN")
            self.db.executemany("INSERT INTO files (record) VALUES (?)",
                                [(json.dumps(r, default=str),) for r in rows])

    def finish(self) -> None:
        """The crawl has listed everything: once all rows are taken, the queue is empty for good."""
        self.db.execute("INSERT OR REPLACE INTO meta VALUES ('finished', '1')")

    def take(self, n: int) -> tuple[list[dict[str, Any]], bool]:
        """The next ``n`` files no one has taken; and whether the queue is now empty for good."""
        if n < 1:
            raise ValueError(f"n must be at least 1, got {n}")
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")  # one taker at a time, across processes
            row = self.db.execute("SELECT value FROM meta WHERE key='cursor'").fetchone()
            cursor = int(row[0]) if row else 0
            rows = self.db.execute("SELECT seq, record FROM files WHERE seq > ? ORDER BY seq LIMIT ?",
                                   (cursor, n)).fetchall()
            if rows:
                cursor = rows[-1][0]
                self.db.execute("INSERT OR REPLACE INTO meta VALUES ('cursor', ?)", (str(cursor),))
            finished = self.db.execute("SELECT 1 FROM meta WHERE key='finished'").fetchone() is not None
            more = self.db.execute("SELECT 1 FROM files WHERE seq > ? LIMIT 1", (cursor,)).fetchone() is not None
        return [json.loads(r) for _, r in rows], finished and not more
