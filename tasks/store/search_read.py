"""The search index's reading half: ranked full-text queries with filters, and filter-only listings.

Split from tasks/store/search.py (which joins this and the writing half into ``SearchIndex``) so each
module has one job. Queries rank with bm25 only a bounded window of the newest matches and make snippets
for the rows shown only, so a query stays within tens of milliseconds at 1M files (bench/search.py).
"""

from __future__ import annotations

import heapq
import re
import sqlite3
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from tasks.store.search_text import to_fts_query
from xtract_blocks.errors import QuerySyntaxError, SearchError

#: Most matches a query ranks by bm25; broader queries rank the newest ones (latency stays bounded).
RANK_WINDOW = 1_000
#: A quoted prefix in an FTS5 query (``"calib"*``), and how many terms it may expand to (``_expand_prefixes``).
_PREFIX = re.compile(r'"([^"]+)"\*')
MAX_PREFIX_TERMS = 32
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


class IndexReader:
    """Reads a search index (``SearchIndex`` mixes this in with its connection ``db``)."""

    db: sqlite3.Connection
    rank_window: int
    last_windowed: bool

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
