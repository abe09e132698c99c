"""The search index's writing half: a sync with the journal, a first build in bulk, mid-run indexing.

Split from tasks/store/search.py (which joins this and the reading half into ``SearchIndex``) so each
module has one job. A sync merge-joins the journal's groups with the index's (tasks/store/sync_merge.py)
and re-reads only the group files that changed. Built in two overlapping halves: a helper thread reads
group files and turns them into text (Python, holding the GIL) while this thread inserts the previous
chunk (SQLite, which releases the GIL while it tokenizes and writes). A first build (an empty index) loads
the docs table without its secondary indexes and creates them at the end (one sort each instead of a
random B-tree insert per row), commits rarely, and lets FTS5 merge more segments at a time.
bench/search.py measures it against a bare FTS5 insert of the same text.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from tasks.store import fastjson
from tasks.store.facts import FactSegments
from tasks.store.journal import StateStore
from tasks.store.layout import MetadataDir
from tasks.store.search_text import file_text
from tasks.store.sync_merge import APPLY_EVERY, BULK_CHUNK, Reindex, chunked, merge, pipelined
from xtract_blocks.errors import IndexMissing

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


class IndexWriter:
    """Writes a search index (``SearchIndex`` mixes this in with its connection ``db``)."""

    db: sqlite3.Connection
    path: str
    facts: FactSegments | None

    def with_facts(self, dataset: str) -> IndexWriter:
        """Write the facts of every group this index reads into ``dataset`` (OUT/facts.parquet)."""
        if self.facts is None or os.path.dirname(self.facts.dir) != dataset:
            self.facts = FactSegments(self.db, dataset)
        return self

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
