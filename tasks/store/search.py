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

Built in two overlapping halves: a helper thread reads group files and turns them into
text and facts (Python, holding the GIL) while this thread inserts the previous chunk
(SQLite, which releases the GIL while it tokenizes and writes). A first build loads the
docs table without its secondary indexes and creates them at the end (one sort each
instead of a random B-tree insert per row). bench/search.py measures it against a bare
FTS5 insert of the same text.
"""

from __future__ import annotations

import heapq
import os
import re
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from tasks.store import fastjson
from tasks.store.facts import FactSegments
from tasks.store.journal import StateStore
from tasks.store.layout import MetadataDir
from tasks.store.search_text import file_text, to_fts_query
from tasks.store.sync_merge import APPLY_EVERY, BULK_CHUNK, Reindex, chunked, merge, pipelined
from xtract_blocks.errors import IndexMissing, QuerySyntaxError, SearchError

#: Rows per transaction while building into an empty index: each commit makes FTS5 flush a segment
#: it must merge later and costs the file syncs, so a first build commits rarely (a crash loses at most
#: this much work).
BULK_COMMIT_ROWS = 100_000
#: Database page size of a new index file, and FTS5's leaf size to match. FTS5 leaves of 8 KB halve the
#: leaf records a build writes and merges (bench/search.py, 200k records: ~8 % of the FTS insert).
PAGE_SIZE = 8192
FTS_LEAF_BYTES = 8100
#: FTS5 merges segments 4 at a time by default: every posting is rewritten once per level, ~5 levels at
#: 1M documents. A first build merges 16 at a time (fewer levels: ~20 % less FTS insert work at 200k
#: records, the same segments a query reads within a few), then the default again for later syncs.
BULK_AUTOMERGE = 16
DEFAULT_AUTOMERGE = 4
#: Most matches a query ranks by bm25; broader queries rank the newest ones (latency stays bounded).
RANK_WINDOW = 1_000

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
#: A quoted prefix in an FTS5 query (``"calib"*``), and how many terms it may expand to (``_expand_prefixes``).
_PREFIX = re.compile(r'"([^"]+)"\*')
MAX_PREFIX_TERMS = 32
#: Secondary indexes of docs: dropped for a first build, created after it (one sort each). Low-cardinality
#: columns (extractor, status) have none: a filtered listing scans newest-first and stops at ``limit``.
_DOC_INDEXES = """
CREATE INDEX IF NOT EXISTS docs_group ON docs(group_id);
CREATE INDEX IF NOT EXISTS docs_extension ON docs(extension);
CREATE INDEX IF NOT EXISTS docs_size ON docs(size);
CREATE INDEX IF NOT EXISTS docs_mtime ON docs(mtime);
"""
#: one row per path (an index from before this had the constraint on the table: then it is not needed)
_PATH_INDEX = "CREATE UNIQUE INDEX IF NOT EXISTS docs_path ON docs(path)"
_DOC_INDEX_NAMES = ("docs_group", "docs_extension", "docs_size", "docs_mtime", "docs_path")
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
    #: the facts pass (tasks/store/facts.py): groups read, rows written, its share of ``seconds``
    facts_groups: int = 0
    facts_rows: int = 0
    facts_seconds: float = 0.0


@dataclass
class Prepared:
    """One chunk of groups made ready for the index off the writing thread: rows and their text."""

    reindex: Reindex = field(default_factory=list)
    drop: list[str] = field(default_factory=list)
    rows: list[tuple[Any, ...]] = field(default_factory=list)
    texts: list[tuple[str, str]] = field(default_factory=list)
    missing: int = 0
    errors: list[str] = field(default_factory=list)
    #: ``payload()``, computed by the preparing thread once the chunk is complete
    encoded: tuple[str, str] | None = None

    def payload(self) -> tuple[str, str]:
        """The rows, and their (path, keys, text), as two JSON arrays made off the writing thread: SQLite
        inserts each with one statement (``json_each``), so the writer holds the GIL for microseconds per
        chunk instead of once per row while the preparing thread wants it."""
        return (fastjson.dumps(self.rows),
                fastjson.dumps([(row[0], *text) for row, text in zip(self.rows, self.texts, strict=True)]))

    def add_group(self, gid: str, doc: dict[str, Any] | None, rows: list[tuple[Any, ...]]) -> None:
        """A group's document and its file rows (path, group_id, size, mtime, extension, mime, extractor, status,
        error)."""
        for row in rows:
            self.rows.append(row)
            self.texts.append(file_text(doc, row[0], row[8]))


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

    def with_facts(self, dataset: str) -> SearchIndex:
        """Write the facts of every group this index reads into ``dataset`` (OUT/facts.parquet)."""
        if self.facts is None or os.path.dirname(self.facts.dir) != dataset:
            self.facts = FactSegments(self.db, dataset)
        return self

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
        its group's document. A file indexed before (it moved to another group) is replaced."""
        latest = {row[0]: (row, doc) for row, doc in items}  # one row per path, the last one wins
        return self.insert_rows([row for row, _ in latest.values()],
                                [file_text(doc, row[0], row[8]) for row, doc in latest.values()])

    def insert_rows(self, rows: list[tuple[Any, ...]], texts: list[tuple[str, str]],
                    payload: tuple[str, str] | None = None) -> int:
        """Insert file rows with their (keys, text), replacing any row of the same path.

        In bulk, because this runs in the flow process beside the workers for every file of a run: one
        lookup per 500 paths, and one statement per table over ``payload`` (``Prepared.payload``).
        """
        if not rows:
            return 0
        if payload is None:
            payload = Prepared(rows=rows, texts=texts).payload()
        moved: list[tuple[int]] = []
        if not self._fresh:
            for i in range(0, len(rows), 500):
                chunk = [r[0] for r in rows[i : i + 500]]
                moved += self.db.execute(f"SELECT id FROM docs WHERE path IN ({','.join('?' * len(chunk))})", chunk)
        if moved:
            self.db.executemany("DELETE FROM fts WHERE rowid=?", moved)
            self.db.executemany("DELETE FROM docs WHERE id=?", moved)
        # ids as AUTOINCREMENT would give them (past any id ever used), assigned here so fts can share them
        (first,) = self.db.execute("SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name='docs'), 0), "
                                   "coalesce((SELECT max(id) FROM docs), 0)) + 1").fetchone()
        self.db.execute("INSERT INTO docs SELECT ?1 + key, value->>0, value->>1, value->>2, value->>3, value->>4, "
                        "value->>5, value->>6, value->>7, value->>8 FROM json_each(?2)", (first, payload[0]))
        self.db.execute("INSERT INTO fts(rowid, path, keys, text) SELECT ?1 + key, value->>0, value->>1, value->>2 "
                        "FROM json_each(?2)", (first, payload[1]))
        return len(rows)

    _fresh = False  # set during a first build: no row can exist yet, so no path needs looking up
    _uncommitted = 0

    def begin_bulk(self) -> bool:
        """Before a build into an empty index: drop the docs table's secondary indexes; returns whether it did."""
        if self.db.execute("SELECT 1 FROM docs LIMIT 1").fetchone() is not None:
            return False
        for name in _DOC_INDEX_NAMES:
            self.db.execute(f"DROP INDEX IF EXISTS {name}")
        try:  # WAL writes every page twice (log, then checkpoint): a first build needs no concurrent readers
            self.db.execute("PRAGMA journal_mode=DELETE")
        except sqlite3.OperationalError:  # a reader has it open: stay in WAL
            pass
        self._fts_config("automerge", BULK_AUTOMERGE)
        if self.db.execute("PRAGMA page_size").fetchone()[0] >= PAGE_SIZE:  # an index file made before: 4 KB
            self._fts_config("pgsz", FTS_LEAF_BYTES)
        self._fresh = True
        return True

    def _fts_config(self, name: str, value: int) -> None:
        self.db.execute("INSERT INTO fts(fts, rank) VALUES (?, ?)", (name, value))

    def end_bulk(self) -> None:
        if self.db.in_transaction:
            self.db.commit()
        self._fresh = False
        self._uncommitted = 0
        self._fts_config("automerge", DEFAULT_AUTOMERGE)
        self._create_doc_indexes()
        self.db.execute("PRAGMA journal_mode=WAL")

    def _create_doc_indexes(self) -> None:
        self.db.executescript(_DOC_INDEXES)
        if not self.db.execute("SELECT 1 FROM sqlite_master WHERE name='sqlite_autoindex_docs_1'").fetchone():
            self.db.execute(_PATH_INDEX)

    def write_prepared(self, p: Prepared, stats: SyncStats) -> None:
        """One transaction (or, in a first build, part of one): drop groups that left, replace changed ones,
        add new ones."""
        if not self.db.in_transaction:
            self.db.execute("BEGIN")
        try:
            for gid in p.drop:
                self._drop_group(gid)
            for gid, _, _, new in p.reindex:
                if not new:
                    self._drop_group(gid)
            stats.files_indexed += self.insert_rows(p.rows, p.texts, p.encoded)
            self.db.execute("INSERT INTO groups SELECT value->>0, value->>1, value->>2 FROM json_each(?)",
                            (fastjson.dumps([(gid, fp, rid) for gid, fp, rid, _ in p.reindex]),))
        except BaseException:
            self.db.rollback()
            raise
        self._uncommitted += len(p.rows)
        if not self._fresh or self._uncommitted >= BULK_COMMIT_ROWS:
            self.db.commit()
            self._uncommitted = 0
        stats.groups_indexed += len(p.reindex)
        stats.groups_removed += len(p.drop)
        stats.group_files_missing += p.missing
        stats.errors += p.errors

    def build(self, chunks: Iterable[Prepared], stats: SyncStats | None = None) -> SyncStats:
        """Write prepared chunks (``pipelined`` makes them as the previous one is written), bulk when first."""
        stats = stats or SyncStats()
        bulk = self.begin_bulk()
        try:
            for p in chunks:
                self.write_prepared(p, stats)
        finally:
            if bulk:
                self.end_bulk()
        return stats

    def sync(self, out_dir: str, *, facts: bool = True) -> SyncStats:
        """Bring the index, then the facts dataset, in step with the journal of ``out_dir``; reads only changed
        group files."""
        started = time.perf_counter()
        layout = MetadataDir.of(out_dir)
        if not os.path.exists(layout.journal):
            raise IndexMissing(f"{out_dir} has no journal (.xtract/state.sqlite): run `xtract run` into it first")
        stats = SyncStats()
        state = StateStore(layout.state)
        reader_state = StateStore(layout.state)  # the helper thread's own connection
        bulk = self.begin_bulk()
        reader = sqlite3.connect(self.path, timeout=60)  # a snapshot, unaffected by our own writes
        try:
            mine: Iterable[tuple[str, str, str]] = ()  # a first build: nothing indexed yet, and no read lock
            if not bulk:  # that would keep our own commits waiting outside WAL
                reader.execute("BEGIN")
                mine = reader.execute("SELECT group_id, fingerprint, run_id FROM groups ORDER BY group_id")
            pipelined(chunked(merge(state.iter_group_versions(), mine), BULK_CHUNK if bulk else APPLY_EVERY),
                      lambda job: _read_groups(reader_state, layout.groups, *job),
                      lambda p: self.write_prepared(p, stats))
            if reader.in_transaction:
                reader.rollback()
        finally:
            if bulk:
                self.end_bulk()
            elif self.db.in_transaction:
                self.db.rollback()
            reader.close()
            state.close()
            reader_state.close()
        self.db.execute("INSERT OR REPLACE INTO meta VALUES ('synced_journal', ?)", (str(_journal_mtime(out_dir)),))
        if facts:
            self.with_facts(layout.facts)
            assert self.facts is not None
            f_started = time.perf_counter()
            stats.facts_groups, stats.facts_rows = self.facts.sync(layout.journal, layout.groups)
            stats.facts_seconds = time.perf_counter() - f_started
        stats.seconds = time.perf_counter() - started
        return stats

    def index_groups(self, out_dir: str, groups: list[tuple[str, str, str]]) -> SyncStats:
        """(Re-)index these journalled groups (group_id, fingerprint, run_id) without a full merge.

        Facts are left to the next full ``sync``: mid-run they would only add small segments.
        """
        started = time.perf_counter()
        stats = SyncStats()
        layout = MetadataDir.of(out_dir)
        state = StateStore(layout.state)
        try:
            for i in range(0, len(groups), APPLY_EVERY):
                chunk = groups[i : i + APPLY_EVERY]
                known = {gid for (gid,) in self.db.execute(
                    f"SELECT group_id FROM groups WHERE group_id IN ({','.join('?' * len(chunk))})",
                    [gid for gid, _, _ in chunk])}
                self.write_prepared(_read_groups(state, layout.groups,
                                                 [(gid, fp, run_id, gid not in known) for gid, fp, run_id in chunk],
                                                 []), stats)
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
        match = query if raw else self._expand_prefixes(to_fts_query(query))
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

    def _expand_prefixes(self, match: str) -> str:
        """``"calib"*`` -> ``("calibration" OR "calibrate")`` from the index's vocabulary.

        FTS5 answers a prefix by merging the whole doclist of every matching term before it can
        return the newest row (618 ms for one prefix at 1M records); an OR of the same terms is read
        newest-first and stops at the rank window like any word. Prefixes with more than
        MAX_PREFIX_TERMS terms, or with punctuation, stay prefixes.
        """
        def expand(m: re.Match[str]) -> str:
            prefix = m.group(1).lower()
            if not prefix.isalnum():
                return m.group(0)
            terms = [t for (t,) in self.db.execute(
                "SELECT term FROM fts_vocab WHERE term >= ? AND term < ? LIMIT ?",
                (prefix, prefix + "\U0010ffff", MAX_PREFIX_TERMS + 1))]
            if not terms or len(terms) > MAX_PREFIX_TERMS:
                return m.group(0)
            return "(" + " OR ".join(f'"{t}"' for t in terms) + ")"

        return _PREFIX.sub(expand, match)

    def count(self) -> int:
        return self.db.execute("SELECT count(*) FROM docs").fetchone()[0]


def _read_groups(state: StateStore, groups_dir: str, reindex: Reindex, drop: list[str]) -> Prepared:
    """Read the group files of a chunk and make their rows and text (the helper thread's half)."""
    p = Prepared(reindex, drop)
    files: dict[str, list[tuple[Any, ...]]] = {}
    for row in state.files_of([gid for gid, _, _, _ in reindex]):
        files.setdefault(row[1], []).append(row)
    for gid, _, _, _ in reindex:
        try:
            doc = fastjson.load_file(os.path.join(groups_dir, f"{gid}.json"))
        except FileNotFoundError:
            doc = None
            p.missing += 1
        except ValueError as exc:
            doc = None
            p.errors.append(f"{gid}.json: {exc}")
        p.add_group(gid, doc, files.get(gid, []))
    p.encoded = p.payload()
    return p


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
