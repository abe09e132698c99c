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
writes the journal; search readers never block it (WAL).
"""

from __future__ import annotations

import heapq
import json
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from tasks.store.journal import StateStore
from tasks.store.layout import MetadataDir
from tasks.store.search_text import file_text, to_fts_query
from xtract_blocks.errors import IndexMissing, QuerySyntaxError, SearchError

APPLY_EVERY = 500
#: Most matches a query ranks by bm25; broader queries rank the newest ones (latency stays bounded).
RANK_WINDOW = 10_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS groups (group_id TEXT PRIMARY KEY, fingerprint TEXT, run_id TEXT) WITHOUT ROWID;
-- AUTOINCREMENT: a docs id is never reused, so an fts row orphaned by an interrupted or out-of-band
-- delete can never collide with (or be mistaken for) a newer document.
CREATE TABLE IF NOT EXISTS docs (
    id INTEGER PRIMARY KEY AUTOINCREMENT, path TEXT NOT NULL UNIQUE, group_id TEXT NOT NULL, size INTEGER, mtime REAL,
    extension TEXT, mime TEXT, extractor TEXT, status TEXT, error TEXT);
CREATE INDEX IF NOT EXISTS docs_group ON docs(group_id);
CREATE INDEX IF NOT EXISTS docs_extension ON docs(extension);
CREATE INDEX IF NOT EXISTS docs_extractor ON docs(extractor);
CREATE INDEX IF NOT EXISTS docs_status ON docs(status);
CREATE INDEX IF NOT EXISTS docs_size ON docs(size);
CREATE INDEX IF NOT EXISTS docs_mtime ON docs(mtime);
CREATE VIRTUAL TABLE IF NOT EXISTS fts USING fts5(path, keys, text, tokenize='unicode61 remove_diacritics 2');
"""
#: bm25 column weights: path, keys, text. A hit in a name says more than one deep in the values.
_WEIGHTS = "3.0, 2.0, 1.0"
_DOC_COLS = "d.path, d.size, d.mtime, d.extension, d.mime, d.extractor, d.status, d.group_id, d.error"


@dataclass
class Hit:
    """One matching file, best first."""

    path: str
    score: float
    snippet: str
    size: int | None
    mtime: float | None
    extension: str | None
    mime: str | None
    extractor: str | None
    status: str | None
    group_id: str
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class SearchResults(list[Hit]):
    """Hits, best first; ``windowed`` when the query matched more files than were ranked (RANK_WINDOW)."""

    windowed: bool = False


@dataclass
class SyncStats:
    groups_indexed: int = 0
    groups_removed: int = 0
    files_indexed: int = 0
    group_files_missing: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)


def index_path(out_dir: str) -> str:
    return MetadataDir.of(out_dir).search_index


def _timestamp(value: float | str | datetime | None) -> float | None:
    """Epoch seconds from a number, a datetime or an ISO date (naive = local time, like ``find -newermt``)."""
    if value is None or isinstance(value, int | float):
        return value
    if isinstance(value, datetime):
        return value.timestamp()
    try:
        return float(value)
    except ValueError:
        try:
            return datetime.fromisoformat(value).timestamp()
        except ValueError:
            raise SearchError(f"not a date or epoch seconds: {value!r}") from None


class SearchIndex:
    """One metadata directory's search index; ``sync`` updates it, ``search`` reads it."""

    def __init__(self, path: str, *, rank_window: int = RANK_WINDOW) -> None:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        self.path = path
        self.rank_window = rank_window
        #: Whether the last query matched more rows than were ranked (see RANK_WINDOW).
        self.last_windowed = False
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=60)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(_SCHEMA)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> SearchIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing ---------------------------------------------------------------
    def _drop_group(self, gid: str) -> None:
        ids = [i for (i,) in self.db.execute("SELECT id FROM docs WHERE group_id=?", (gid,))]
        self.db.executemany("DELETE FROM fts WHERE rowid=?", [(i,) for i in ids])
        self.db.execute("DELETE FROM docs WHERE group_id=?", (gid,))
        self.db.execute("DELETE FROM groups WHERE group_id=?", (gid,))

    def add_files(self, items: Iterable[tuple[tuple[Any, ...], dict[str, Any] | None]]) -> int:
        """Index files: (path, group_id, size, mtime, extension, mime, extractor, status, error) rows, each with
        its group's document. A file indexed before (it moved to another group) is replaced.

        In bulk, because this runs in the flow process beside the workers for every file of a run: one
        lookup per 500 paths and ``executemany`` instead of three statements per file (a full sync of
        10k files: 1.67-1.93 s -> 1.27-1.45 s, bench/RESULTS.md "Third pass").
        """
        latest = {row[0]: (row, doc) for row, doc in items}  # one row per path, the last one wins
        if not latest:
            return 0
        paths = list(latest)
        moved: list[tuple[int]] = []
        for i in range(0, len(paths), 500):
            chunk = paths[i : i + 500]
            moved += self.db.execute(f"SELECT id FROM docs WHERE path IN ({','.join('?' * len(chunk))})", chunk)
        if moved:
            self.db.executemany("DELETE FROM fts WHERE rowid=?", moved)
            self.db.executemany("DELETE FROM docs WHERE id=?", moved)
        # ids as AUTOINCREMENT would give them (past any id ever used), assigned here so fts can share them
        (first,) = self.db.execute("SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name='docs'), 0), "
                                   "coalesce((SELECT max(id) FROM docs), 0)) + 1").fetchone()
        numbered = list(enumerate(latest.values(), start=first))
        self.db.executemany("INSERT INTO docs VALUES (?,?,?,?,?,?,?,?,?,?)", [(i, *row) for i, (row, _) in numbered])
        self.db.executemany("INSERT INTO fts(rowid, path, keys, text) VALUES (?,?,?,?)",
                            [(i, row[0], *file_text(doc, row[0], row[8])) for i, (row, doc) in numbered])
        return len(numbered)

    def _apply(self, state: StateStore, groups_dir: str, reindex: list[tuple[str, str, str, bool]],
               drop: list[str], stats: SyncStats) -> None:
        """One transaction: drop groups that left, (re-)read the group files of new and changed ones."""
        files: dict[str, list[tuple[Any, ...]]] = {}
        for row in state.files_of([gid for gid, _, _, _ in reindex]):
            files.setdefault(row[1], []).append(row)
        with self.db:
            self.db.execute("BEGIN")
            for gid in drop:
                self._drop_group(gid)
            items: list[tuple[tuple[Any, ...], dict[str, Any] | None]] = []
            for gid, _, _, new in reindex:
                if not new:
                    self._drop_group(gid)
                try:
                    with open(os.path.join(groups_dir, f"{gid}.json"), encoding="utf-8") as fh:
                        doc = json.load(fh)
                except FileNotFoundError:
                    doc = None
                    stats.group_files_missing += 1
                except ValueError as exc:
                    doc = None
                    stats.errors.append(f"{gid}.json: {exc}")
                items += [(row, doc) for row in files.get(gid, [])]
            stats.files_indexed += self.add_files(items)
            self.db.executemany("INSERT INTO groups VALUES (?,?,?)", [(gid, fp, rid) for gid, fp, rid, _ in reindex])
        stats.groups_indexed += len(reindex)
        stats.groups_removed += len(drop)

    def sync(self, out_dir: str) -> SyncStats:
        """Bring the index in step with the journal of ``out_dir``; reads only changed group files."""
        started = time.perf_counter()
        journal_path = MetadataDir.of(out_dir).journal
        if not os.path.exists(journal_path):
            raise IndexMissing(f"{out_dir} has no journal (.xtract/state.sqlite): run `xtract run` into it first")
        stats = SyncStats()
        state = StateStore(os.path.dirname(journal_path))
        reader = sqlite3.connect(self.path, timeout=60)  # a snapshot, unaffected by our own writes
        try:
            reader.execute("BEGIN")
            mine = reader.execute("SELECT group_id, fingerprint, run_id FROM groups ORDER BY group_id")
            reindex: list[tuple[str, str, str, bool]] = []
            drop: list[str] = []
            for action, item in _merge(state.iter_group_versions(), mine):
                if action == "drop":
                    drop.append(item)
                else:
                    reindex.append((*item, action == "new"))
                if len(reindex) + len(drop) >= APPLY_EVERY:
                    self._apply(state, MetadataDir.of(out_dir).groups, reindex, drop, stats)
                    reindex, drop = [], []
            self._apply(state, MetadataDir.of(out_dir).groups, reindex, drop, stats)
            reader.rollback()
        finally:
            reader.close()
            state.close()
        self.db.execute("INSERT OR REPLACE INTO meta VALUES ('synced_journal', ?)", (str(_journal_mtime(out_dir)),))
        stats.seconds = time.perf_counter() - started
        return stats

    def index_groups(self, out_dir: str, groups: list[tuple[str, str, str]]) -> SyncStats:
        """(Re-)index these journalled groups (group_id, fingerprint, run_id) without a full merge."""
        started = time.perf_counter()
        stats = SyncStats()
        state = StateStore(MetadataDir.of(out_dir).state)
        try:
            for i in range(0, len(groups), APPLY_EVERY):
                chunk = groups[i : i + APPLY_EVERY]
                known = {gid for (gid,) in self.db.execute(
                    f"SELECT group_id FROM groups WHERE group_id IN ({','.join('?' * len(chunk))})",
                    [gid for gid, _, _ in chunk])}
                self._apply(state, MetadataDir.of(out_dir).groups,
                            [(gid, fp, run_id, gid not in known) for gid, fp, run_id in chunk], [], stats)
        finally:
            state.close()
        stats.seconds = time.perf_counter() - started
        return stats

    def is_stale(self, out_dir: str) -> bool:
        """Whether the journal changed since the last sync (cheap: two stats)."""
        row = self.db.execute("SELECT value FROM meta WHERE key='synced_journal'").fetchone()
        return row is None or float(row[0]) != _journal_mtime(out_dir)

    # -- reading ---------------------------------------------------------------
    def search(self, query: str = "", *, extractor: str | None = None, ext: str | None = None,
               status: str | None = None, min_size: int | None = None, max_size: int | None = None,
               newer_than: float | str | datetime | None = None, older_than: float | str | datetime | None = None,
               path_prefix: str | None = None, limit: int = 20, raw: bool = False) -> SearchResults:
        """Files matching ``query`` (best bm25 first) and every filter; an empty query lists newest first."""
        where, params = [], []
        for column, value in (("extractor", extractor), ("status", status)):
            if value:
                where.append(f"d.{column} = ?")
                params.append(value)
        if ext:
            where.append("d.extension = ?")
            params.append(ext.lower().lstrip("."))
        for op, value in ((">=", min_size), ("<=", max_size)):
            if value is not None:
                where.append(f"d.size {op} ?")
                params.append(int(value))
        for op, value in ((">=", _timestamp(newer_than)), ("<", _timestamp(older_than))):
            if value is not None:
                where.append(f"d.mtime {op} ?")
                params.append(value)
        if path_prefix:  # a range on the path index
            where.append("d.path >= ? AND d.path < ?")
            params += [path_prefix, path_prefix + "\U0010ffff"]
        filters = "".join(f" AND {w}" for w in where)
        if not query.strip():
            # newest first: an index order, so a listing stops after ``limit`` rows instead of sorting all
            sql = f"SELECT {_DOC_COLS} FROM docs d WHERE 1{filters} ORDER BY d.id DESC LIMIT ?"
            rows = self.db.execute(sql, [*params, limit]).fetchall()
            return SearchResults(Hit(r[0], 0.0, "", *r[1:8], r[8]) for r in rows)
        match = query if raw else to_fts_query(query)
        # bm25 costs microseconds per matching row: a query matching a third of a million files
        # ranks only the newest ``rank_window`` matches (``last_windowed`` says so), newest first
        # being an FTS5 index order that stops early. Snippets are built for the rows shown only.
        scored_sql = (f"SELECT fts.rowid, bm25(fts, {_WEIGHTS}) FROM fts JOIN docs d ON d.id = fts.rowid "
                      f"WHERE fts MATCH ?{filters} ORDER BY fts.rowid DESC LIMIT {int(self.rank_window)}")
        try:
            scored = self.db.execute(scored_sql, [match, *params]).fetchall()
            self.last_windowed = len(scored) >= self.rank_window
            best = dict(heapq.nsmallest(limit, scored, key=lambda r: r[1]))
            rows = self.db.execute(
                f"SELECT {_DOC_COLS}, fts.rowid, snippet(fts, -1, '[', ']', '…', 12) FROM fts "
                f"JOIN docs d ON d.id = fts.rowid WHERE fts MATCH ? AND fts.rowid IN ({','.join('?' * len(best))})",
                [match, *best]).fetchall() if best else []
        except sqlite3.OperationalError as exc:
            if "fts5" in str(exc) or "syntax" in str(exc):
                raise QuerySyntaxError(f"cannot parse query {query!r}: {exc}") from None
            raise
        hits = SearchResults(sorted((Hit(r[0], round(-best[r[9]], 4), r[10], *r[1:8], r[8]) for r in rows),
                                    key=lambda h: (-h.score, h.path)))
        hits.windowed = self.last_windowed
        return hits

    def count(self) -> int:
        return self.db.execute("SELECT count(*) FROM docs").fetchone()[0]


def _merge(journal: Iterator[tuple[str, str, str, str]],
           mine: Iterable[tuple[str, str, str]]) -> Iterator[tuple[str, Any]]:
    """Merge-join two group_id-ordered streams into actions: ('index', (gid, fp, run)) for a changed group,
    ('new', (gid, fp, run)) for one the index lacks, ('drop', gid) for one the journal lacks."""
    mine_it = iter(mine)
    cur = next(mine_it, None)
    for gid, fp, run_id, outcome in journal:
        while cur is not None and cur[0] < gid:
            yield "drop", cur[0]
            cur = next(mine_it, None)
        if cur is not None and cur[0] == gid:
            _, my_fp, my_run = cur
            cur = next(mine_it, None)
            if my_fp == fp and (outcome != "done" or my_run == run_id):
                continue  # unchanged, or skipped by a run after the one we indexed
            yield "index", (gid, fp, run_id)
        else:
            yield "new", (gid, fp, run_id)
    while cur is not None:
        yield "drop", cur[0]
        cur = next(mine_it, None)


def _journal_mtime(out_dir: str) -> float:
    base = MetadataDir.of(out_dir).journal
    stamps = []
    for p in (base, f"{base}-wal"):
        try:
            stamps.append(os.stat(p).st_mtime_ns)
        except FileNotFoundError:
            pass
    return float(max(stamps, default=0))


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
