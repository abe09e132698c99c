"""Facts: one row per metadata leaf, so SQL reaches nested metadata without reading group files.

"Which netCDF files hold variable tas for 2020" is a join of two facts of the same file
(``netcdf.variables.name = 'tas'`` and a time range), not a full-text guess. A fact is
(path, group_id, extractor, key, value_text, value_num): ``key`` is the dotted path of the leaf
with list positions dropped (``netcdf.variables.name``), ``value_text`` its text (every leaf),
``value_num`` its number (ints and floats only). ``path`` is the file the fact is about: a
member's own metadata names the member, a single-file group its file; metadata of a whole
multi-file group has no path (join ``files`` on group_id).

The facts of OUT live in ``OUT/facts.parquet/<part>/seg-*.parquet``, kept in step with the
journal by the search index's sync (tasks/store/search.py) in a pass of their own, so they are
incremental like it: the journal's groups are merged with the groups the facts hold (by
fingerprint), each sync adds one segment with the changed groups' facts, a segment whose groups
changed or left is rewritten without them (or deleted), and small segments are merged, so files
do not pile up. Which version of a group is in which segment is kept in the search index's
SQLite file (``fact_groups``, ``fact_segments``); a segment is listed there only after its file
is in place, and orphans either way are cleared at the next sync. A pass of their own, not the
search pass, because building facts costs about as much Python per document as the full-text
text does, and the search index is what must be quick to build (bench/search.py).
"""

from __future__ import annotations

import os
import sqlite3
import time
import uuid
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from tasks.store import fastjson
from tasks.store.dataset import WHOLE
from tasks.store.journal import StateStore
from tasks.store.sync_merge import Reindex, chunked, merge, pipelined

FACT_SCHEMA = pa.schema([
    ("path", pa.string()),
    ("group_id", pa.string()),
    ("extractor", pa.string()),
    ("key", pa.string()),
    ("value_text", pa.string()),
    ("value_num", pa.float64()),
])
#: Leaves kept per group: a 10k-column table is still answerable (every column name), a runaway list is not.
MAX_FACTS_PER_GROUP = 20_000
MAX_TEXT = 1_000
#: Rows buffered before a row group is written (bounded memory while a sync runs).
ROW_GROUP_ROWS = 100_000
#: More segments than this, or any below SMALL_SEGMENT_ROWS beyond the first, are merged at the end of a sync.
MAX_SEGMENTS = 4
SMALL_SEGMENT_ROWS = 1_000_000

SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS fact_segments (name TEXT PRIMARY KEY, groups INTEGER NOT NULL, rows INTEGER NOT NULL);
-- segment '' = the group was read and has no facts
CREATE TABLE IF NOT EXISTS fact_groups (
    group_id TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, run_id TEXT NOT NULL, segment TEXT NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS fact_groups_segment ON fact_groups(segment);
"""


class FactColumns:
    """Column lists of facts under construction (cheaper than a tuple per leaf)."""

    __slots__ = ("path", "group_id", "extractor", "key", "value_text", "value_num")

    def __init__(self) -> None:
        for name in self.__slots__:
            setattr(self, name, [])

    def __len__(self) -> int:
        return len(self.key)

    def extend(self, other: FactColumns) -> None:
        for name in self.__slots__:
            getattr(self, name).extend(getattr(other, name))

    def table(self) -> pa.Table:
        return pa.table([pa.array(getattr(self, n), type=FACT_SCHEMA.field(n).type) for n in self.__slots__],
                        schema=FACT_SCHEMA)


def _walk(value: Any, key: str, out: FactColumns, path: str | None, gid: str, extractor: str, budget: int) -> int:
    """Append the leaves under ``value`` (at dotted ``key``); returns the leaf budget left."""
    if isinstance(value, dict):
        for k, v in value.items():
            if budget <= 0:
                break
            budget = _walk(v, f"{key}.{k}", out, path, gid, extractor, budget)
        return budget
    if isinstance(value, list):
        for v in value:
            if budget <= 0:
                break
            budget = _walk(v, key, out, path, gid, extractor, budget)
        return budget
    if value is None:
        return budget
    kind = type(value)
    out.path.append(path)
    out.group_id.append(gid)
    out.extractor.append(extractor)
    out.key.append(key)
    if kind is bool:
        out.value_text.append("true" if value else "false")
        out.value_num.append(None)
    elif kind is int or kind is float:
        out.value_text.append(str(value))
        out.value_num.append(float(value) if value == value and abs(value) != float("inf") else None)
    else:
        out.value_text.append(str(value)[:MAX_TEXT])
        out.value_num.append(None)
    return budget - 1


def doc_facts(doc: dict[str, Any] | None, group_id: str, paths: list[str], out: FactColumns) -> None:
    """Append the facts of one group document (its ``metadata``) to ``out``."""
    metadata = (doc or {}).get("metadata")
    if not isinstance(metadata, dict):
        return
    whole = paths[0] if len(paths) == 1 else None
    budget = MAX_FACTS_PER_GROUP
    for name, slot in metadata.items():
        name = str(name)
        if isinstance(slot, dict) and isinstance(slot.get("members"), dict):
            for member, md in slot["members"].items():
                budget = _walk(md, name, out, str(member), group_id, name, budget)
            slot = {k: v for k, v in slot.items() if k != "members"}
        budget = _walk(slot, name, out, whole, group_id, name, budget)
        if budget <= 0:
            break


def _load(path: str) -> dict[str, Any] | None:
    try:
        doc = fastjson.load_file(path)
    except (OSError, ValueError):  # a missing or broken group file has no facts; the search pass reports it
        return None
    return doc if isinstance(doc, dict) else None


class FactSegments:
    """The facts dataset of one metadata directory, kept by the search index's connection ``db``."""

    def __init__(self, db: sqlite3.Connection, dataset: str, part: str = WHOLE) -> None:
        self.db = db
        self.dir = os.path.join(dataset, part)
        db.executescript(SCHEMA_SQL)
        self._writer: pq.ParquetWriter | None = None
        self._name = ""
        self._pending = FactColumns()
        self._groups = 0
        self._rows = 0

    # -- a sync ---------------------------------------------------------------------------
    def sync(self, journal: str, groups_dir: str) -> tuple[int, int]:
        """Bring the facts in step with the journal; returns (groups read, fact rows written)."""
        self.heal()
        state = StateStore(os.path.dirname(journal))
        reader_state = StateStore(os.path.dirname(journal))  # the helper thread's own connection
        reader = sqlite3.connect(self._db_path(), timeout=60)  # a snapshot, unaffected by our own writes
        read = [0]
        try:
            reader.execute("BEGIN")
            mine = reader.execute("SELECT group_id, fingerprint, run_id FROM fact_groups ORDER BY group_id")

            def prepare(job: tuple[Reindex, list[str]]) -> tuple[Reindex, list[str], FactColumns, set[str]]:
                reindex, drop = job
                facts = FactColumns()
                paths: dict[str, list[str]] = {}
                for path, gid, *_ in reader_state.files_of([gid for gid, *_ in reindex]):
                    paths.setdefault(gid, []).append(path)
                for gid, *_ in reindex:
                    doc_facts(_load(os.path.join(groups_dir, f"{gid}.json")), gid, paths.get(gid, []), facts)
                return reindex, drop, facts, set(facts.group_id)

            def write(prepared: tuple[Reindex, list[str], FactColumns, set[str]]) -> None:
                reindex, drop, facts, with_rows = prepared
                read[0] += len(reindex)
                self._add(reindex, drop, facts, with_rows)

            pipelined(chunked(merge(state.iter_group_versions(), mine)), prepare, write)
            reader.rollback()
            rows = self._rows + len(self._pending)
            self.finish()
        finally:
            self.abandon()
            reader.close()
            state.close()
            reader_state.close()
        self.compact()
        return read[0], rows

    def _db_path(self) -> str:
        return self.db.execute("PRAGMA database_list").fetchone()[2]

    def _add(self, reindex: Reindex, drop: list[str], facts: FactColumns, with_rows: set[str]) -> None:
        """One transaction: forget where changed and departed groups' facts were, map the new versions to the
        segment being written (or to '' when they have no facts)."""
        if with_rows and not self._name:
            self._name = f"seg-{uuid.uuid4().hex[:16]}.parquet"
        with self.db:
            self.db.execute("BEGIN")
            self.db.executemany("DELETE FROM fact_groups WHERE group_id=?",
                                [(g,) for g in drop] + [(gid,) for gid, _, _, new in reindex if not new])
            # OR REPLACE: a concurrent sync (`xtract query` during a run's own) may have mapped it already
            self.db.executemany("INSERT OR REPLACE INTO fact_groups VALUES (?,?,?,?)",
                                [(gid, fp, rid, self._name if gid in with_rows else "") for gid, fp, rid, _ in reindex])
        self._pending.extend(facts)
        self._groups += len(with_rows)
        if len(self._pending) >= ROW_GROUP_ROWS:
            self._write_pending()

    def _write_pending(self) -> None:
        if not len(self._pending):
            return
        if self._writer is None:
            os.makedirs(self.dir, exist_ok=True)
            self._writer = pq.ParquetWriter(os.path.join(self.dir, f".{self._name}"), FACT_SCHEMA, compression="zstd")
        table = self._pending.table()
        self._writer.write_table(table)
        self._rows += table.num_rows
        self._pending = FactColumns()

    def finish(self) -> None:
        """Put this sync's segment in place, then list it (the order that keeps a crash harmless)."""
        if not self._name:
            return
        self._write_pending()
        name, groups, rows = self._name, self._groups, self._rows
        self._name, self._groups, self._rows = "", 0, 0
        if self._writer is None:  # groups were mapped but held no rows: nothing to publish
            self.db.execute("UPDATE fact_groups SET segment='' WHERE segment=?", (name,))
            return
        self._writer.close()
        self._writer = None
        os.replace(os.path.join(self.dir, f".{name}"), os.path.join(self.dir, name))
        self.db.execute("INSERT OR REPLACE INTO fact_segments VALUES (?,?,?)", (name, groups, rows))

    def abandon(self) -> None:
        """A failed sync: drop the half-written segment (its groups are re-read next time)."""
        if self._writer is not None:
            try:
                self._writer.close()
            except OSError:
                pass
            self._writer = None
        if self._name:
            try:
                os.unlink(os.path.join(self.dir, f".{self._name}"))
            except OSError:
                pass
        self._name, self._groups, self._rows, self._pending = "", 0, 0, FactColumns()

    # -- housekeeping -------------------------------------------------------------------
    def heal(self) -> None:
        """Undo what an interrupted sync left: mappings to unlisted segments, files nobody lists."""
        listed = {n for (n,) in self.db.execute("SELECT name FROM fact_segments")}
        self.db.execute("DELETE FROM fact_groups WHERE segment != '' AND segment NOT IN "
                        "(SELECT name FROM fact_segments)")
        try:
            names = os.listdir(self.dir)
        except FileNotFoundError:
            names = []
        for name in names:
            full = os.path.join(self.dir, name)
            try:
                # a hidden segment may be another process's sync in progress (`xtract query` during a run)
                if name not in listed and (not name.startswith(".") or time.time() - os.stat(full).st_mtime > 3600):
                    os.unlink(full)
            except OSError:
                pass
        for name in listed - set(names):  # a segment file deleted by hand: re-read its groups
            self._drop_segment(name)

    def _drop_segment(self, name: str) -> None:
        with self.db:
            self.db.execute("BEGIN")
            self.db.execute("DELETE FROM fact_groups WHERE segment=?", (name,))
            self.db.execute("DELETE FROM fact_segments WHERE name=?", (name,))

    def compact(self) -> int:
        """Rewrite segments holding facts of groups that changed or left, merge small ones; returns files rewritten."""
        segments = self.db.execute("SELECT name, groups, rows FROM fact_segments ORDER BY rows DESC").fetchall()
        live = dict(self.db.execute("SELECT segment, count(*) FROM fact_groups WHERE segment != '' GROUP BY segment"))
        stale = [name for name, groups, _ in segments if live.get(name, 0) < groups]
        for name in stale:
            if not live.get(name):
                self._drop_segment(name)  # listed no more, then gone (a crash between: heal deletes the file)
                try:
                    os.unlink(os.path.join(self.dir, name))
                except FileNotFoundError:
                    pass
        stale = [n for n in stale if live.get(n)]
        small = [name for name, _, rows in segments[1:] if rows < SMALL_SEGMENT_ROWS and name not in stale]
        merge = stale + (small if len(segments) > MAX_SEGMENTS or len(small) > 1 else [])
        if len(merge) == 1 and merge[0] not in stale:
            return 0
        if merge:
            self._rewrite(merge)
        return len(merge)

    def _rewrite(self, names: list[str]) -> None:
        """One new segment with the live facts of ``names``, streamed row group by row group."""
        new = f"seg-{uuid.uuid4().hex[:16]}.parquet"
        tmp = os.path.join(self.dir, f".{new}")
        rows = groups = 0
        with pq.ParquetWriter(tmp, FACT_SCHEMA, compression="zstd") as writer:
            for name in names:
                keep = pa.array([g for (g,) in self.db.execute(
                    "SELECT group_id FROM fact_groups WHERE segment=?", (name,))], type=pa.string())
                groups += len(keep)
                pf = pq.ParquetFile(os.path.join(self.dir, name), pre_buffer=False)
                for batch in pf.iter_batches(batch_size=ROW_GROUP_ROWS, use_threads=False):
                    batch = batch.filter(pc.is_in(batch.column("group_id"), value_set=keep))
                    if batch.num_rows:
                        writer.write_batch(batch)
                        rows += batch.num_rows
        os.replace(tmp, os.path.join(self.dir, new))
        with self.db:
            self.db.execute("BEGIN")
            self.db.execute("INSERT INTO fact_segments VALUES (?,?,?)", (new, groups, rows))
            for name in names:
                self.db.execute("UPDATE fact_groups SET segment=? WHERE segment=?", (new, name))
                self.db.execute("DELETE FROM fact_segments WHERE name=?", (name,))
        for name in names:
            try:
                os.unlink(os.path.join(self.dir, name))
            except OSError:
                pass
