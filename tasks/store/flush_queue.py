"""A crawl's flush queue: files handed out while the crawl runs, each once, to any client or process.

The seed's ``flush_crawl_metadata`` popped files off its in-memory queue as the crawl
filled it. Here the crawl appends every batch it writes to a SQLite file in the
endpoint's state (``EndpointState.flush_queue(crawl_id)``), one row per batch holding
the batch in Arrow IPC form (a per-file row cost the crawl 2.7x its time at 100k files;
a blob per batch costs it next to nothing), and a flush takes the next ``n`` files past a
cursor (batch, offset) stored in the same file, in one ``BEGIN IMMEDIATE`` transaction:
two clients (or processes) flushing one crawl never get the same file.
Unlike the seed, a flushed file is still extracted: the queue is a copy of the listing,
not the extraction's work list.
"""

from __future__ import annotations

import os
import sqlite3
from typing import Any

import pyarrow as pa

from xtract_blocks.errors import CrawlError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS batches (seq INTEGER PRIMARY KEY, rows INTEGER NOT NULL, data BLOB NOT NULL);
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

    def put(self, batch: pa.RecordBatch | list[dict[str, Any]]) -> None:
        """Append one crawl batch (one row, one transaction)."""
        if isinstance(batch, list):
            batch = pa.RecordBatch.from_pylist(batch)
        if batch.num_rows == 0:
            return
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, batch.schema) as writer:
            writer.write_batch(batch)
        self.db.execute("INSERT INTO batches (rows, data) VALUES (?, ?)",
                        (batch.num_rows, sink.getvalue().to_pybytes()))

    def finish(self) -> None:
        """The crawl has listed everything: once all rows are taken, the queue is empty for good."""
        self.db.execute("INSERT OR REPLACE INTO meta VALUES ('finished', '1')")

    def take(self, n: int) -> tuple[list[dict[str, Any]], bool]:
        """The next ``n`` files no one has taken; and whether the queue is now empty for good."""
        if n < 1:
            raise ValueError(f"n must be at least 1, got {n}")
        files: list[dict[str, Any]] = []
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")  # one taker at a time, across processes
            row = self.db.execute("SELECT value FROM meta WHERE key='cursor'").fetchone()
            seq, offset = (int(x) for x in row[0].split(":")) if row else (0, 0)
            while len(files) < n:
                found = self.db.execute("SELECT seq, rows, data FROM batches WHERE seq >= ? ORDER BY seq LIMIT 1",
                                        (seq,)).fetchone()
                if found is None:
                    break
                seq, rows, data = found
                want = n - len(files)
                if offset < rows:
                    batch = pa.ipc.open_stream(data).read_next_batch()
                    files.extend(batch.slice(offset, want).to_pylist())
                if offset + want >= rows:
                    seq, offset = seq + 1, 0
                else:
                    offset += want
            self.db.execute("INSERT OR REPLACE INTO meta VALUES ('cursor', ?)", (f"{seq}:{offset}",))
            finished = self.db.execute("SELECT 1 FROM meta WHERE key='finished'").fetchone() is not None
            more = self.db.execute("SELECT 1 FROM batches WHERE seq > ? OR (seq = ? AND rows > ?) LIMIT 1",
                                   (seq, seq, offset)).fetchone() is not None
        return files, finished and not more


def prune_queues(directory: str, *, keep: int = 1) -> list[str]:
    """Remove the flush queues in ``directory`` but the newest ``keep``; returns the removed paths.

    A new crawl of an endpoint replaces its spools, so only the latest earlier crawl's queue is
    worth keeping (a client may still be flushing it); the rest would only grow the state.
    """
    try:
        names = [n for n in os.listdir(directory) if n.startswith("flush-") and n.endswith(".sqlite")]
    except FileNotFoundError:
        return []
    paths = sorted((os.path.join(directory, n) for n in names), key=os.path.getmtime, reverse=True)
    removed = []
    for path in paths[keep:]:
        for suffix in ("", "-wal", "-shm"):
            try:
                os.unlink(path + suffix)
            except FileNotFoundError:
                pass
        removed.append(path)
    return removed
