"""Local metadata search: SQLite FTS5 over a metadata directory's group documents.

Users ask "which netCDF files have a variable named tas" without a search service,
so the index is one SQLite file beside the journal (OUT/.xtract/search.sqlite):
``docs`` holds one row per file (path, size, mtime, extension, extractor, status)
for the filters, ``fts`` (FTS5, same rowid) holds the path, the metadata keys and
the metadata as "key value" text for ranked (bm25) matching with snippets.

It is kept in step with the journal, not rebuilt: ``sync`` walks the journal's
groups and the index's groups, both ordered by group_id, and re-reads only the
group files whose fingerprint changed or that this run extracted again, and drops
groups that left. A missed sync (crash) heals on the next one. Only the flow
writes the journal; search readers never block it (WAL). A second pass of the same
sync keeps the facts dataset (tasks/store/facts.py) in step the same way.

This module holds the schema, the connection and the entry points; ``SearchIndex`` joins
the writing half (tasks/store/search_write.py: sync, first build, mid-run indexing) and the
reading half (tasks/store/search_read.py: ranked queries, filters, snippets).
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterable
from typing import Any

from tasks.store.facts import FactSegments
from tasks.store.layout import MetadataDir
from tasks.store.search_read import RANK_WINDOW, Hit, IndexReader, SearchResults
from tasks.store.search_write import PAGE_SIZE, IndexWriter, Prepared, SyncStats
from xtract_blocks.errors import IndexMissing, QuerySyntaxError, SearchError

__all__ = ["RANK_WINDOW", "Hit", "IndexMissing", "Prepared", "QuerySyntaxError", "SearchError", "SearchIndex",
           "SearchResults", "SyncStats", "SyncWhileRunning", "index_path", "refresh_index", "search", "update_index"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS groups (group_id TEXT PRIMARY KEY, fingerprint TEXT, run_id TEXT) WITHOUT ROWID;
-- AUTOINCREMENT: a docs id is never reused, so an fts row orphaned by an interrupted or out-of-band
-- delete can never collide with (or be mistaken for) a newer document.
CREATE TABLE IF NOT EXISTS docs (
    id INTEGER PRIMARY KEY AUTOINCREMENT, path TEXT NOT NULL, group_id TEXT NOT NULL, size INTEGER, mtime REAL,
    extension TEXT, mime TEXT, extractor TEXT, status TEXT, error TEXT);
CREATE VIRTUAL TABLE IF NOT EXISTS fts USING fts5(path, keys, text, tokenize='unicode61 remove_diacritics 2');
CREATE VIRTUAL TABLE IF NOT EXISTS fts_vocab USING fts5vocab(fts, 'row');
"""


def index_path(out_dir: str) -> str:
    return MetadataDir.of(out_dir).search_index


class SearchIndex(IndexWriter, IndexReader):
    """One metadata directory's search index; ``sync`` updates it, ``search`` reads it."""

    def __init__(self, path: str, *, rank_window: int = RANK_WINDOW) -> None:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        self.path = path
        self.rank_window = rank_window
        #: Whether the last query matched more rows than were ranked (see RANK_WINDOW).
        self.last_windowed = False
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=60)
        self.db.execute(f"PRAGMA page_size={PAGE_SIZE}")  # a new file only (before WAL creates it)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA cache_size=-32000")  # 32 MB: B-tree inserts of a build stay in memory
        self.db.executescript(_SCHEMA)
        self._create_doc_indexes()  # (again) after a build that was killed before it made them
        self.facts: FactSegments | None = None

    def close(self) -> None:
        if self.facts is not None:
            self.facts.abandon()
        self.db.close()

    def __enter__(self) -> SearchIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def update_index(out_dir: str) -> SyncStats:
    """Sync the search index of ``out_dir`` with its journal (creating it if needed)."""
    with SearchIndex(index_path(out_dir)) as index:
        return index.sync(out_dir)


class SyncWhileRunning:
    """Keeps the search index close behind an extraction run, so the sink's final sync has little left.

    The run hands over each batch it journals (``note``); every ``min_interval_s`` (from the run's
    progress hook, in the flow process while workers extract) those groups, and only those, are
    indexed: a full ``sync`` merges the whole journal with the index, which costs ~0.5 s per 200k
    groups and would be paid again at every interval. The sink's final sync still does one full
    merge (drops, skips, anything missed). A failure stops the mid-run indexing only: the final
    sync reports it.
    """

    def __init__(self, out_dir: str, *, min_interval_s: float = 3.0) -> None:
        self.out_dir = out_dir
        self.min_interval_s = min_interval_s
        self.next_at = time.monotonic() + min_interval_s
        self.pending: list[tuple[str, str, str]] = []
        self.syncs = 0

    def note(self, results: Iterable[dict[str, Any]], run_id: str) -> None:
        """Groups just committed to the journal (their group files are written)."""
        if self.next_at != float("inf"):
            self.pending.extend((r["group_id"], r["fingerprint"], run_id) for r in results)

    def __call__(self) -> None:
        if not self.pending or time.monotonic() < self.next_at:
            return
        groups, self.pending = self.pending, []
        try:
            with SearchIndex(index_path(self.out_dir)) as index:
                index.index_groups(self.out_dir, groups)
        except (SearchError, sqlite3.Error, OSError):
            self.next_at = float("inf")
            return
        self.syncs += 1
        self.next_at = time.monotonic() + self.min_interval_s


def refresh_index(metadata_dir: str) -> SyncStats | None:
    """Sync the search index and the facts of ``metadata_dir`` if its journal changed since the last sync, or if
    its facts were never written (a directory from before facts existed); None when nothing needed doing."""
    out = MetadataDir.of(metadata_dir)
    if not os.path.exists(out.journal):
        return None
    with SearchIndex(out.search_index) as index:
        if index.is_stale(out.root) or not os.path.exists(out.facts):
            return index.sync(out.root)
    return None


def search(query: str = "", metadata_dir: str = "xtract-metadata", *, refresh: bool = True,
           **filters: Any) -> SearchResults:
    """Search a metadata directory: ``search("name=tas", "OUT", ext="nc", limit=10)``.

    With ``refresh`` the index is first synced if the journal changed since the last
    sync (a no-op check otherwise), so results follow the latest run.
    """
    out = os.path.abspath(os.path.expanduser(metadata_dir))
    path = index_path(out)
    has_journal = os.path.exists(MetadataDir.of(out).journal)
    if not has_journal and not os.path.exists(path):
        raise IndexMissing(f"{out} has no search index and no journal: is it a metadata directory?")
    with SearchIndex(path) as index:
        if refresh and has_journal and index.is_stale(out):
            index.sync(out)
        return index.search(query, **filters)
