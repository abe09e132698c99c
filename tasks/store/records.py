"""The records that move between stages, and the on-disk spool that carries them.

Stages hand each other spool files (Parquet, written and read in batches), not
Python lists: a crawl of millions of files never sits in the flow's memory and
Prefect never hashes or tracks a giant parameter.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from extractors.fspath import to_text
from tasks.store.arrow_columns import column, record_batch, string_scalar, strings


class FileRecord(NamedTuple):
    """One crawled file. Files of one directory are yielded contiguously."""

    path: str
    size: int
    mtime: float
    extension: str
    endpoint: str
    permissions: str | None = None
    #: the inode the crawl saw (local crawls); extraction refuses a path that now names another file
    inode: int | None = None


CRAWL_SCHEMA = pa.schema(
    [
        ("path", pa.string()),
        ("size", pa.int64()),
        ("mtime", pa.float64()),
        ("extension", pa.string()),
        ("endpoint", pa.string()),
        ("permissions", pa.string()),
        ("inode", pa.uint64()),
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
        ("inode", pa.uint64()),
    ]
)


#: Vectorised ``extractors.detect.split_extension`` over whole paths (RE2 via pyarrow; no per-file Python).
_COMPOUND_EXT = r"\.(?P<ext>[^./]{1,5}\.(?:gz|bz2|xz|zst))$"
_SIMPLE_EXT = r"\.(?P<ext>[^./]*)$"
_HIDDEN_NO_EXT = r"(?:^|/)\.[^./]*$"


def path_extensions(paths: pa.Array) -> pa.Array:
    """Lower-case extensions of a string array of paths, as ``split_extension`` gives them one by one.

    The crawl hot loop stays free of string work: at 10^5-10^6 files per second even a
    microsecond per file is a fifth of the budget, while RE2 over a whole batch is not.
    """
    lower = pc.utf8_lower(paths)
    compound = pc.struct_field(pc.extract_regex(lower, _COMPOUND_EXT), [0])
    simple = pc.struct_field(pc.extract_regex(lower, _SIMPLE_EXT), [0])
    empty = string_scalar("")
    ext = pc.coalesce(compound, simple, empty)
    hidden = pc.match_substring_regex(lower, _HIDDEN_NO_EXT)
    return pc.if_else(hidden, empty, ext)


def permission_strings(modes: pa.Array) -> pa.Array:
    """``stat.filemode`` of an int array of st_mode values, computed once per distinct mode."""
    uniq = pc.unique(modes)
    names = strings([stat.filemode(m) for m in uniq.to_pylist()])
    return names.take(pc.index_in(modes, value_set=uniq))


def crawl_batch(paths: list[str], sizes: list[int], mtimes: list[float], modes: list[int],
                endpoint: str, inodes: list[int] | None = None) -> pa.RecordBatch:
    """A CRAWL_SCHEMA record batch from a crawler's column lists (extension and permissions derived here).

    ``inodes``: what the crawl's stat said (None: a crawler that cannot know, the column is null).
    """
    try:
        path_arr = strings(paths)
    except UnicodeEncodeError:  # names that are not UTF-8: stored as text, see extractors/fspath.py
        path_arr = strings([to_text(p) for p in paths])
    return pa.record_batch([
        path_arr,
        column(sizes, pa.int64()),
        column(mtimes, pa.float64()),
        path_extensions(path_arr),
        pa.repeat(string_scalar(endpoint), len(paths)),
        permission_strings(column(modes, pa.int64())),
        pa.nulls(len(paths), pa.uint64()) if inodes is None else column(inodes, pa.uint64()),
    ], schema=CRAWL_SCHEMA)


def inode_column(batch: pa.RecordBatch) -> pa.Array:
    """A spool batch's inodes; nulls for a spool written before the crawl recorded them (no check then)."""
    if "inode" in batch.schema.names:
        return batch.column("inode")
    return pa.nulls(batch.num_rows, pa.uint64())


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
            self._writer.write_batch(record_batch(columns, self.schema))
            self.rows += n

    def write_batch(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows:
            self._writer.write_batch(batch)
            self.rows += batch.num_rows

    def write_rows(self, rows: Iterable[tuple[Any, ...]]) -> None:
        """Rows as tuples in schema order; trailing columns they lack are null (a plugin crawler's
        6-field rows from before the ``inode`` column)."""
        rows = list(rows)
        if rows:
            cols = list(zip(*rows, strict=True))
            cols += [(None,) * len(rows)] * (len(self.schema.names) - len(cols))
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


def iter_spool_batches(path: str, batch_rows: int = 8192) -> Iterator[pa.RecordBatch]:
    """Record batches of a spool file, in write order, with a small, flat memory footprint.

    Without pre-buffering and reader threads: those read ahead whole column chunks
    in parallel; with them, and with big batches, reading a 1M-file spool measured +105 MB peak RSS against +19 MB
    here, for no gain in a stage that is bound by the Python work on each batch.
    """
    pf = pq.ParquetFile(path, pre_buffer=False)
    yield from pf.iter_batches(batch_size=batch_rows, use_threads=False)


def iter_spool(path: str, batch_rows: int = 8192) -> Iterator[dict[str, list[Any]]]:
    """Column dicts of a spool file, batch by batch, in write order."""
    for batch in iter_spool_batches(path, batch_rows):
        yield batch.to_pydict()
