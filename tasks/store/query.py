"""SQL over a metadata directory: DuckDB, in-process, over the index and the facts datasets.

Questions about millions of files ("how many TB of FITS per instrument") are aggregations and
joins, which SQL states and DuckDB runs over Parquet without a server or a load step. Two
tables are offered: ``files`` (every column of index.parquet, one row per file) and ``facts``
(one row per metadata leaf, tasks/store/facts.py). Both are views over the Parquet files,
read lazily: a query reads only the columns and row groups it needs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from tasks.store import dataset
from tasks.store.facts import FACT_SCHEMA
from tasks.store.layout import MetadataDir
from xtract_blocks.errors import IndexMissing, QuerySyntaxError

#: DuckDB types of the facts columns, for the empty view of a directory with no facts yet.
_EMPTY_FACTS = ("SELECT NULL::VARCHAR AS path, NULL::VARCHAR AS group_id, NULL::VARCHAR AS extractor, "
                "NULL::VARCHAR AS key, NULL::VARCHAR AS value_text, NULL::DOUBLE AS value_num WHERE false")
assert FACT_SCHEMA.names == ["path", "group_id", "extractor", "key", "value_text", "value_num"]


@dataclass
class QueryResult:
    """Column names and rows (tuples of Python values) of one query."""

    columns: list[str]
    rows: list[tuple[Any, ...]]

    def records(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]


def connect(metadata_dir: str) -> Any:
    """An in-memory DuckDB connection with the views ``files`` and ``facts`` of ``metadata_dir``."""
    import duckdb  # imported here: the CLI's other commands do not need it

    layout = MetadataDir.of(metadata_dir)
    index_files = dataset.data_files(layout.index) if dataset.exists(layout.index) else []
    if not index_files:
        raise IndexMissing(f"{layout.root} has no index.parquet: run `xtract run ... -o {layout.root}` first")
    con = duckdb.connect(":memory:")
    con.read_parquet(index_files).create_view("files")
    fact_files = dataset.data_files(layout.facts) if dataset.exists(layout.facts) else []
    if fact_files:
        con.read_parquet(fact_files).create_view("facts")
    else:
        con.execute(f"CREATE VIEW facts AS {_EMPTY_FACTS}")
    return con


def run_query(metadata_dir: str, sql: str, *, refresh: bool = True) -> QueryResult:
    """Run one SQL statement over ``files`` and ``facts`` of ``metadata_dir``.

    With ``refresh`` the facts are first brought up to date when the journal changed since
    the last sync (the search index's sync writes them; a no-op check otherwise).
    """
    import duckdb

    out = MetadataDir.of(metadata_dir)
    if not os.path.isdir(out.root):
        raise IndexMissing(f"metadata dir does not exist: {out.root}")
    if refresh:
        from tasks.store.search import refresh_index

        refresh_index(out.root)
    con = connect(out.root)
    try:
        cur = con.execute(sql)
        if cur.description is None:
            return QueryResult([], [])
        columns = [d[0] for d in cur.description]
        return QueryResult(columns, cur.fetchall())
    except duckdb.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise QuerySyntaxError(f"query failed: {first}") from None
    finally:
        con.close()
