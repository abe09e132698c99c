"""Parquet datasets in a metadata directory (index.parquet, facts.parquet): directories of parts.

Why a directory and not one file: a run, or one shard of a sharded run, rewrites only its own
part (``index.parquet/<part>/data-00000.parquet ...``), so writers never contend and a shard
never rewrites another's rows. Part directories are plain names (``all``, ``shard-003``), not
``key=value``: pandas, pyarrow.dataset, DuckDB and Polars read the dataset lazily with exactly the
columns its files hold. Names starting with ``.`` or ``_`` are ignored by all of them, which is
where a part is written before it replaces the old one (one rename), so a reader sees the old
part or the new one. Small files never pile up: a part is rewritten whole, in files of at most
MAX_ROWS_PER_FILE rows. An older metadata directory holds index.parquet as a single file; every
reader here takes either form, and the next write turns it into a dataset.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterable

import pyarrow as pa
import pyarrow.parquet as pq

#: The part a run that covers the whole repository writes (it owns the whole dataset).
WHOLE = "all"
MAX_ROWS_PER_FILE = 2_000_000
_HIDDEN = (".", "_")


def exists(path: str) -> bool:
    """Whether a dataset (a directory) or a legacy single file is at ``path``."""
    return os.path.exists(path)


def data_files(path: str) -> list[str]:
    """The Parquet files of a dataset (or ``[path]`` for a single file), sorted; hidden names skipped."""
    if os.path.isfile(path):
        return [path]
    files: list[str] = []
    for root, dirs, names in os.walk(path):
        dirs[:] = sorted(d for d in dirs if not d.startswith(_HIDDEN))
        files += [os.path.join(root, n) for n in sorted(names) if n.endswith(".parquet") and not n.startswith(_HIDDEN)]
    return files


def read_table(path: str, columns: list[str] | None = None) -> pa.Table:
    """The whole dataset (or single file) as one table; ``columns`` limits what is read."""
    files = data_files(path)
    if os.path.isfile(path) or not files:
        return pq.read_table(path, columns=columns) if files else pa.table({c: [] for c in columns or []})
    return pa.concat_tables([pq.read_table(f, columns=columns) for f in files], promote_options="default")


def remove(path: str) -> None:
    """Delete a dataset or a legacy single file (offload with delete_source)."""
    if os.path.isdir(path):
        shutil.rmtree(path)
    elif os.path.exists(path):
        os.unlink(path)


def check_part_name(part: str) -> str:
    if not part or part.startswith(_HIDDEN) or os.sep in part or part in (".", ".."):
        raise ValueError(f"not a dataset part name: {part!r}")
    return part


class PartWriter:
    """Write one part of a dataset; it replaces the previous part only on ``commit``.

    ``exclusive`` (a run over the whole repository): the commit also removes every other part,
    whose rows this one supersedes.
    """

    def __init__(self, dataset: str, part: str, schema: pa.Schema, *, compression: str = "zstd",
                 max_rows_per_file: int = MAX_ROWS_PER_FILE) -> None:
        self.dataset = dataset
        self.part = check_part_name(part)
        self.schema = schema
        self.compression = compression
        self.max_rows_per_file = max_rows_per_file
        self.rows = 0
        self.files = 0
        # beside the dataset, not in it: a legacy single-file index stays readable until the commit
        parent = os.path.dirname(dataset)
        prefix = f".{os.path.basename(dataset)}-{part}.tmp-"
        _remove_leftovers(parent, prefix)  # a writer of this part killed before its commit
        _remove_leftovers(dataset, f".old-{part}-")  # ... or killed between its renames
        self._tmp = os.path.join(parent, f"{prefix}{uuid.uuid4().hex}")
        os.makedirs(self._tmp)
        self._writer: pq.ParquetWriter | None = None
        self._in_file = 0

    def write_batch(self, batch: pa.RecordBatch | pa.Table) -> None:
        offset = 0
        while offset < batch.num_rows:
            if self._writer is None or self._in_file >= self.max_rows_per_file:
                self._roll()
            take = min(batch.num_rows - offset, self.max_rows_per_file - self._in_file)
            assert self._writer is not None
            self._writer.write(batch.slice(offset, take))
            self._in_file += take
            self.rows += take
            offset += take

    def write_batches(self, batches: Iterable[pa.RecordBatch]) -> None:
        for batch in batches:
            self.write_batch(batch)

    def _roll(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._writer = pq.ParquetWriter(os.path.join(self._tmp, f"data-{self.files:05d}.parquet"), self.schema,
                                        compression=self.compression)
        self.files += 1
        self._in_file = 0

    def commit(self, *, exclusive: bool = False) -> int:
        """Make the new part visible in place of the old one; returns the rows written."""
        if self._writer is None:
            self._roll()  # an empty part still has a file: readers get the schema
        assert self._writer is not None
        self._writer.close()
        if os.path.isfile(self.dataset):  # a legacy single-file index: becomes a dataset now
            os.unlink(self.dataset)
        os.makedirs(self.dataset, exist_ok=True)
        target = os.path.join(self.dataset, self.part)
        old: list[str] = []
        names = os.listdir(self.dataset) if exclusive else [self.part]
        for name in names:
            cur = os.path.join(self.dataset, name)
            if not name.startswith(_HIDDEN) and os.path.lexists(cur):
                gone = os.path.join(self.dataset, f".old-{name}-{uuid.uuid4().hex}")
                os.rename(cur, gone)
                old.append(gone)
        os.rename(self._tmp, target)
        for gone in old:
            remove(gone)
        return self.rows

    def abort(self) -> None:
        if self._writer is not None:
            try:
                self._writer.close()
            except OSError:
                pass
        shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> PartWriter:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is not None:
            self.abort()


def _remove_leftovers(parent: str, prefix: str) -> None:
    if not os.path.isdir(parent):
        return
    for name in os.listdir(parent):
        if name.startswith(prefix):
            remove(os.path.join(parent, name))
