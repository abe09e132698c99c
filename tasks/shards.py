"""Sharding one endpoint across flow runs: split its crawl by its own counts, merge the shards' metadata back.

The parent run crawls once. ``split_crawl`` cuts the crawl spool into N contiguous slices
(only at directory boundaries, so a directory's files, and so its groups, stay in one shard),
each holding about 1/N of the files, and writes each slice as the crawl spool of the shard's
own metadata directory (``OUT/.xtract/shards/shard-NNN``). A shard is then an ordinary
``xtract-endpoint`` run with stage 'xtract' there: its own journal, so a shard that dies is
simply run again and resumes. ``merge_shards`` makes OUT one metadata directory again: each
shard's index and facts become the part ``shard-NNN`` of OUT's datasets (tasks/store/dataset.py)
and its group documents are hard-linked into OUT/groups.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from tasks.sink import remove_stray_group_files
from tasks.store import dataset
from tasks.store.layout import MetadataDir
from tasks.store.records import SpoolWriter, iter_spool_batches


@dataclass
class Shard:
    """One slice of the endpoint: where its metadata lives and how much it holds."""

    number: int
    metadata_dir: str
    files: int = 0
    bytes: int = 0

    @property
    def part(self) -> str:
        """Its part name in OUT's datasets."""
        return f"shard-{self.number:03d}"


def split_crawl(crawl_spool: str, spools: list[str]) -> list[tuple[int, int]]:
    """Write ``crawl_spool``'s rows into ``spools`` in order, cutting only between directories.

    Each slice gets about total/len(spools) files; returns (files, bytes) per slice (trailing
    slices may be empty when there are fewer directories than shards).
    """
    import pyarrow.parquet as pq

    source = pq.ParquetFile(crawl_spool)
    total = source.metadata.num_rows
    schema = source.schema_arrow  # a spool from before the crawl recorded inodes keeps its columns
    target = max(1, -(-total // len(spools)))
    sizes = [[0, 0] for _ in spools]  # files, bytes per slice
    k, last_dir = 0, None
    writer = SpoolWriter(spools[0], schema)

    def put(piece: pa.RecordBatch) -> None:
        writer.write_batch(piece)
        sizes[k][0] += piece.num_rows
        sizes[k][1] += int(pc.sum(piece.column("size")).as_py() or 0) if piece.num_rows else 0

    try:
        for batch in iter_spool_batches(crawl_spool):
            dirs = pc.replace_substring_regex(batch.column("path"), r"/[^/]*$", "").to_pylist()
            start = 0
            for i, d in enumerate(dirs):
                if sizes[k][0] + i - start >= target and d != last_dir and k + 1 < len(spools):
                    put(batch.slice(start, i - start))
                    writer.close()
                    k, start = k + 1, i
                    writer = SpoolWriter(spools[k], schema)
                last_dir = d
            put(batch.slice(start))
    finally:
        writer.close()
    for j in range(k + 1, len(spools)):  # an empty spool for each slice the directories did not reach
        with SpoolWriter(spools[j], schema):
            pass
    return [(files, nbytes) for files, nbytes in sizes]


def _replace_part(dataset_path: str, part: str, source: str) -> int:
    """Copy the dataset at ``source`` (a shard's index or facts) into ``dataset_path`` as ``part``."""
    if not dataset.exists(source):
        return 0
    table = dataset.read_table(source)
    with dataset.PartWriter(dataset_path, part, table.schema) as writer:
        if table.num_rows:
            writer.write_batch(table)
        return writer.commit(exclusive=False)


def _drop_other_parts(dataset_path: str, keep: set[str]) -> None:
    """Parts of an earlier layout (a whole-repository run, more shards) would repeat or resurrect rows."""
    if os.path.isfile(dataset_path):
        os.unlink(dataset_path)
        return
    if not os.path.isdir(dataset_path):
        return
    for name in os.listdir(dataset_path):
        full = os.path.join(dataset_path, name)
        if name not in keep and not name.startswith((".", "_")):
            shutil.rmtree(full) if os.path.isdir(full) else os.unlink(full)


def _link_groups(src_dir: str, dst_dir: str) -> set[str]:
    """Every group document of a shard, hard-linked (copied across file systems) into OUT/groups."""
    os.makedirs(dst_dir, exist_ok=True)
    ids: set[str] = set()
    try:
        entries = list(os.scandir(src_dir))
    except FileNotFoundError:
        return ids
    for entry in entries:
        if not entry.name.endswith(".json") or entry.name.startswith("."):
            continue
        tmp = os.path.join(dst_dir, f".merge-{entry.name}")
        try:
            os.link(entry.path, tmp)
        except OSError:
            shutil.copyfile(entry.path, tmp)
        os.replace(tmp, os.path.join(dst_dir, entry.name))
        ids.add(entry.name[:-5])
    return ids


def merge_shards(out: MetadataDir, shards: list[Shard]) -> dict[str, int]:
    """Make OUT one metadata directory over all shards; returns index rows and group documents."""
    parts = {s.part for s in shards}
    rows, groups = 0, set()
    for shard in shards:
        src = MetadataDir(shard.metadata_dir)
        rows += _replace_part(out.index, shard.part, src.index)
        _replace_part(out.facts, shard.part, src.facts)
        groups |= _link_groups(src.groups, out.groups)
    _drop_other_parts(out.index, parts)
    _drop_other_parts(out.facts, parts)
    removed = remove_stray_group_files(out.groups, groups)
    return {"index_rows": rows, "groups": len(groups), "groups_removed": removed}


@task(name="merge-shards", cache_policy=NO_CACHE, task_run_name="merge-shards-{endpoint_name}")
def merge(out_dir: str, shards: list[Shard], *, endpoint_name: str = "endpoint") -> dict[str, int]:
    """The merge as a stage of the parent run."""
    merged = merge_shards(MetadataDir.of(out_dir), shards)
    get_run_logger().info("merged %d shards: %d index rows, %d group documents", len(shards), merged["index_rows"],
                          merged["groups"])
    return merged


def index_counts(out: MetadataDir) -> dict[str, int]:
    """Files per status in OUT's index (the sharded run's summary counts)."""
    table = dataset.read_table(out.index, columns=["status"])
    if not table.num_rows:
        return {}
    counts = pc.value_counts(table.column("status"))
    return {str(v["values"]): int(v["counts"]) for v in counts.to_pylist()}

