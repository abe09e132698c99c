"""The records that move between stages, and the on-disk spool that carries them.

Stages hand each other spool files (Parquet, written and read in batches), not
Python lists: a crawl of millions of files never sits in the flow's memory and
Prefect never hashes or tracks a giant parameter.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

import pyarrow as pa
import pyarrow.parquet as pq


class FileRecord(NamedTuple):
    """One crawled file. Files of one directory are yielded contiguously."""

    path: str
    size: int
    mtime: float
    extension: str
    endpoint: str
    permissions: str | None = None


CRAWL_SCHEMA = pa.schema(
    [
        ("path", pa.string()),
        ("size", pa.int64()),
        ("mtime", pa.float64()),
        ("extension", pa.string()),
        ("endpoint", pa.string()),
        ("permissions", pa.string()),
    ]
)

GROUP_SCHEMA = pa.schema(
    [
        ("group_id", pa.string()),
        ("fingerprint", pa.string()),
        ("path", pa.string()),
        ("size", pa.int64()),
        ("mtime", pa.float64()),
        ("extension", pa.string()),
        ("mime", pa.string()),
        ("extractor", pa.string()),
        ("endpoint", pa.string()),
    ]
)


class SpoolWriter:
    """Append record batches to a Parquet file; visible under its name only when closed."""

    def __init__(self, path: str, schema: pa.Schema) -> None:
        self.path = path
        self.schema = schema
        self._tmp = f"{path}.partial"
        os.makedirs(os.path.dirname(path), exist_ok=True)
        self._writer = pq.ParquetWriter(self._tmp, schema, compression="zstd")
        self.rows = 0

    def write_columns(self, columns: dict[str, list[Any]]) -> None:
        n = len(next(iter(columns.values()), []))
        if n:
            self._writer.write_batch(pa.record_batch(columns, schema=self.schema))
            self.rows += n

    def write_rows(self, rows: Iterable[tuple[Any, ...]]) -> None:
        rows = list(rows)
        if rows:
            cols = list(zip(*rows, strict=True))
            self.write_columns({name: list(col) for name, col in zip(self.schema.names, cols, strict=True)})

    def close(self) -> None:
        self._writer.close()
        os.replace(self._tmp, self.path)

    def abort(self) -> None:
        self._writer.close()
        try:
            os.unlink(self._tmp)
        except OSError:
            pass

    def __enter__(self) -> SpoolWriter:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def iter_spool(path: str, batch_rows: int = 65_536) -> Iterator[dict[str, list[Any]]]:
    """Column dicts of a spool file, batch by batch, in write order."""
    pf = pq.ParquetFile(path)
    for batch in pf.iter_batches(batch_size=batch_rows):
        yield batch.to_pydict()
