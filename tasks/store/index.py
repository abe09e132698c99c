"""Reading a metadata directory's index (index.parquet, a file or a dataset of parts) back."""

from __future__ import annotations

from typing import Any

from tasks.store.layout import MetadataDir


def items_from_index(metadata_dir: str) -> list[tuple[Any, int | None, float | None]]:
    """(path, size, mtime) of every file in a metadata directory's index."""
    from tasks.store.dataset import read_table  # imported here: the CLI's other commands do not need Arrow

    table = read_table(MetadataDir.of(metadata_dir).index, columns=["path", "size", "mtime"])
    return list(zip(*(table.column(c).to_pylist() for c in ("path", "size", "mtime")), strict=True))
