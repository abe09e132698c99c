"""The metadata directory's memory across runs: which groups are done, per-file outcomes.

SQLite (WAL) under OUT/.xtract/ is the journal: each finished batch is committed
in one transaction, so a crash loses at most the batches in flight, a rerun skips
every group whose fingerprint is already recorded *and that succeeded*, and
index.parquet is rebuilt from it without holding the repository in memory.

A failure is never "done": a group with any file in status ``error`` is extracted
again by the next run (a timeout may pass with a larger limit, a worker crash may
not recur) unless the caller asks not to retry failures; a failed group that is
not retried keeps its ``error`` status and message in the index and the counts,
so "skipped" only ever means "unchanged and succeeded before".
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable, Iterator
from typing import Any

import pyarrow as pa

from tasks.store.dataset import WHOLE, PartWriter

INDEX_SCHEMA = pa.schema(
    [
        ("path", pa.string()),
        ("size", pa.int64()),
        ("mtime", pa.float64()),
        ("extension", pa.string()),
        ("mime", pa.string()),
        ("extractor", pa.string()),
        ("group_id", pa.string()),
        ("status", pa.string()),
        ("error", pa.string()),
    ]
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS groups (
    group_id TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, extractor TEXT,
    run_id TEXT NOT NULL, outcome TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY, group_id TEXT NOT NULL, size INTEGER, mtime REAL, extension TEXT,
    mime TEXT, extractor TEXT, status TEXT NOT NULL, error TEXT);
CREATE INDEX IF NOT EXISTS files_group ON files(group_id);
CREATE INDEX IF NOT EXISTS groups_run ON groups(run_id);
"""


#: A file's status in the index: a skipped group's files are "skipped" unless they failed (then still "error").
_INDEX_STATUS = "CASE WHEN g.outcome='skipped' AND f.status != 'error' THEN 'skipped' ELSE f.status END"


def _chunks(items: list[str], n: int = 900) -> Iterator[list[str]]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


class StateStore:
    """One metadata directory's journal. Only the flow process writes it."""

    def __init__(self, state_dir: str, endpoint: str = "") -> None:
        #: The endpoint (its identity) this store records for: several endpoints may share one journal,
        #: and ``forget_unseen`` forgets only this endpoint's groups.
        self.endpoint = endpoint
        os.makedirs(state_dir, exist_ok=True)
        self.path = os.path.join(state_dir, "state.sqlite")
        self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(_SCHEMA)
        if "endpoint" not in {row[1] for row in self.db.execute("PRAGMA table_info(groups)")}:
            self.db.execute("ALTER TABLE groups ADD COLUMN endpoint TEXT NOT NULL DEFAULT ''")

    def close(self) -> None:
        self.db.close()

    def done_fingerprints(self, group_ids: list[str], *, retry_failed: bool = True) -> dict[str, str]:
        """group_id -> recorded fingerprint, for the ids that need no work if unchanged.

        With ``retry_failed`` (the default) a group that has a file in error is left out,
        so the caller extracts it again; without it, failed groups count as done too.
        """
        found: dict[str, str] = {}
        failed = "" if not retry_failed else (
            " AND NOT EXISTS (SELECT 1 FROM files f WHERE f.group_id = groups.group_id AND f.status = 'error')")
        for chunk in _chunks(group_ids):
            q = (f"SELECT group_id, fingerprint FROM groups WHERE group_id IN ({','.join('?' * len(chunk))})"
                 + failed)
            found.update(self.db.execute(q, chunk).fetchall())
        return found

    def mark_skipped(self, group_ids: list[str], run_id: str) -> None:
        with self.db:
            self.db.execute("BEGIN")
            for chunk in _chunks(group_ids):
                self.db.execute(
                    f"UPDATE groups SET run_id=?, outcome='skipped', endpoint=? "
                    f"WHERE group_id IN ({','.join('?' * len(chunk))})",
                    [run_id, self.endpoint, *chunk],
                )

    def record(self, results: Iterable[dict[str, Any]], run_id: str) -> None:
        """Commit the outcome of extracted groups (one transaction per call)."""
        with self.db:
            self.db.execute("BEGIN")
            for res in results:
                gid = res["group_id"]
                self.db.execute("DELETE FROM files WHERE group_id=?", (gid,))
                self.db.execute(
                    "INSERT OR REPLACE INTO groups (group_id, fingerprint, extractor, run_id, outcome, endpoint) "
                    "VALUES (?,?,?,?, 'done', ?)",
                    (gid, res["fingerprint"], res["extractor"], run_id, self.endpoint),
                )
                self.db.executemany(
                    "INSERT OR REPLACE INTO files VALUES (?,?,?,?,?,?,?,?,?)",
                    [(f["path"], gid, f["size"], f["mtime"], f["extension"], f["mime"], f["extractor"],
                      f["status"], f["error"]) for f in res["files"]],
                )

    def forget_unseen(self, run_id: str) -> list[str]:
        """Drop this endpoint's groups this run did not see (deleted or regrouped files); returns their ids.

        Other endpoints' groups in a shared journal stay (rows from before endpoints were recorded,
        endpoint '', count as every endpoint's); so do groups left without files, whoever wrote them.
        """
        gone = [g for (g,) in self.db.execute(
            "SELECT group_id FROM groups WHERE (run_id != ? AND endpoint IN (?, '')) "
            "OR NOT EXISTS (SELECT 1 FROM files f WHERE f.group_id = groups.group_id)", (run_id, self.endpoint))]
        with self.db:
            self.db.execute("BEGIN")
            for chunk in _chunks(gone):
                marks = ",".join("?" * len(chunk))
                self.db.execute(f"DELETE FROM files WHERE group_id IN ({marks})", chunk)
                self.db.execute(f"DELETE FROM groups WHERE group_id IN ({marks})", chunk)
        return gone

    def iter_group_versions(self, chunk_rows: int = 10_000) -> Iterator[tuple[str, str, str, str]]:
        """(group_id, fingerprint, run_id, outcome) of every group, by group_id: what the search index syncs to."""
        cur = self.db.execute("SELECT group_id, fingerprint, run_id, outcome FROM groups ORDER BY group_id")
        while rows := cur.fetchmany(chunk_rows):
            yield from rows

    def files_of(self, group_ids: list[str]) -> list[tuple[Any, ...]]:
        """(path, group_id, size, mtime, extension, mime, extractor, status, error) of the groups' files."""
        rows: list[tuple[Any, ...]] = []
        for chunk in _chunks(group_ids):
            q = ("SELECT path, group_id, size, mtime, extension, mime, extractor, status, error FROM files "
                 f"WHERE group_id IN ({','.join('?' * len(chunk))})")
            rows.extend(self.db.execute(q, chunk).fetchall())
        return rows

    def counts(self, run_id: str) -> dict[str, int]:
        """File counts by index status for this run.

        skipped = unchanged and succeeded in an earlier run; a failed group that was not
        retried (``retry_failed=False``) still counts its errors as errors.
        """
        rows = self.db.execute(
            f"SELECT {_INDEX_STATUS} AS s, count(*) "
            "FROM files f JOIN groups g USING(group_id) WHERE g.run_id=? GROUP BY s", (run_id,)
        ).fetchall()
        return {status: n for status, n in rows}

    def counts_by_extractor(self, run_id: str) -> dict[str, dict[str, int]]:
        rows = self.db.execute(
            f"SELECT coalesce(f.extractor, 'none'), {_INDEX_STATUS} AS s,"
            " count(*) FROM files f JOIN groups g USING(group_id) WHERE g.run_id=? GROUP BY 1, 2", (run_id,)
        ).fetchall()
        out: dict[str, dict[str, int]] = {}
        for name, status, n in rows:
            out.setdefault(name, {})[status] = n
        return out

    def write_index(self, index_path: str, run_id: str, *, chunk_rows: int = 100_000, part: str = WHOLE) -> int:
        """Write index.parquet atomically from the journal (every endpoint's groups); returns the row count.

        ``run_id`` is kept for callers; after ``forget_unseen`` this endpoint's groups all carry it,
        and other endpoints sharing the directory keep their own runs' groups.
        """
        cur = self.db.execute(
            "SELECT f.path, f.size, f.mtime, f.extension, f.mime, f.extractor, f.group_id, "
            f"{_INDEX_STATUS}, f.error "
            "FROM files f JOIN groups g USING(group_id) ORDER BY f.path"
        )
        # index_path is a dataset (tasks/store/dataset.py): this writes its part ``part`` only; the
        # whole-repository part (WHOLE) supersedes every other. On any failure (e.g. ENOSPC) the
        # previous index stays valid and nothing half-written stays.
        with PartWriter(index_path, part, INDEX_SCHEMA) as writer:
            while batch := cur.fetchmany(chunk_rows):
                cols = list(zip(*batch, strict=True))
                writer.write_batch(pa.record_batch([list(c) for c in cols], schema=INDEX_SCHEMA))
            return writer.commit(exclusive=part == WHOLE)
