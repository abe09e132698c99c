"""Zarr stores as groups: the grouper holds a store's rows aside and writes each store as one group.

A Zarr store is a directory tree (extractors/zarr_store.py), so directory-wise grouping
would cut it into one group per array or chunk directory, and the ``zarr`` extractor
would never see the whole store. Every file of one store has the same key,
``zarr_group_key`` (its store root), whatever the grouper. The crawl keeps a
directory's files together but may interleave subtrees (the local crawler's helper
walker), so a store's rows need not be contiguous in the crawl spool: they are held
here until the spool ends, then each store is written as one group (cut by
``split_large`` like any giant group, in path order, so ids do not depend on crawl order).

Memory: held rows are Arrow slices (the path's bytes plus ~60 bytes a row); writing a held
store sorts it and hashes ``STORE_SLICE_ROWS`` rows at a time. A store past ``HOLD_FILES``
rows (a store of 10^6 chunk files) is not held: from then on its rows are written as they
come, one part per directory (cut by ``split_large``), each directory being complete in
the chunk it arrives in. Whether a store is that large depends only on its file count, so
ids stay deterministic. Measured on one v3 store of 200,000 chunk files (400 directories):
peak RSS of the group stage +41 to +59 MB over the same tree without Zarr handling with the
100,000-row hold, +107 MB holding the whole store; the Arrow pool peaked at 26 and 51 MB. So
the cost is at most ``HOLD_FILES`` rows (~60 MB) per store crawled at once, plus the rows of
small stores that wait for the end of the spool (all of them, in total).

The name test runs as one RE2 kernel over the chunk, so a tree with no Zarr-shaped
names pays one regex pass per chunk and no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TypeVar

import pyarrow as pa
import pyarrow.compute as pc

from extractors.zarr_store import zarr_group_key

T = TypeVar("T")

#: A path whose base name could be a Zarr metadata file or chunk key (``zarr_group_key``'s own name test).
CANDIDATE = r"(^|/)(\.z(group|array|attrs|metadata)|zarr\.json|[0-9]+(\.[0-9]+)*)$"
#: Above this many files, a store's rows are written as they come, one part (or more) per directory.
HOLD_FILES = 100_000


def store_parts(members: list[T], dir_of: Callable[[T], str], split: Callable[[list[T]], list[list[T]]],
                large: bool) -> list[list[T]]:
    """A store's ``members`` (path order) as groups: ``split`` of the whole store, or per directory when large."""
    if not large:
        return split(members)
    by_dir: dict[str, list[T]] = {}
    for m in members:
        by_dir.setdefault(dir_of(m), []).append(m)
    return [part for d in sorted(by_dir) for part in split(by_dir[d])]


Split = Callable[[list[int], Callable[[int], int]], list[list[int]]]


def store_ranges(rb: pa.RecordBatch, large: bool, split: Split) -> tuple[pa.RecordBatch, list[tuple[int, int]]]:
    """``store_parts`` in Arrow: the store's rows in group order and each group's row range.

    Group order is path order, or (directory, path) order when large, so every group is a
    contiguous range and the caller can hash and write a few thousand rows at a time.
    """
    paths = rb.column("path")
    n = len(rb)
    if large:
        dirs = pc.replace_substring_regex(paths, r"/[^/]*$", "")
        idx = pc.sort_indices(pa.table({"d": dirs, "p": paths}), sort_keys=[("d", "ascending"), ("p", "ascending")])
        dirs = dirs.take(idx)
        changes = pc.indices_nonzero(pc.not_equal(dirs.slice(1), dirs.slice(0, n - 1))).to_pylist()
        cuts = [0, *(i + 1 for i in changes), n]
    else:
        idx = pc.sort_indices(paths)
        cuts = [0, n]
    rb = rb.take(idx)
    sizes = rb.column("size").to_pylist()
    ranges = [(part[0], part[-1] + 1) for a, b in zip(cuts, cuts[1:], strict=False)
              for part in split(list(range(a, b)), sizes.__getitem__)]
    return rb, ranges


class StoreHold:
    """The rows of Zarr stores taken out of directory chunks, held per store root until the spool ends."""

    def __init__(self, hold_files: int = HOLD_FILES) -> None:
        self.hold_files = hold_files
        self.held: dict[str, list[pa.RecordBatch]] = {}
        self.counts: dict[str, int] = {}
        self.large: set[str] = set()

    def take(self, rb: pa.RecordBatch, dirs: pa.Array) -> tuple[pa.RecordBatch, pa.Array, list[pa.RecordBatch]]:
        """(rows outside any store, their directories, rows of large stores to write now, one batch per store)."""
        cand = pc.match_substring_regex(rb.column("path"), CANDIDATE)
        if not pc.any(cand).as_py():
            return rb, dirs, []
        paths = rb.column("path")
        cand_dirs = dirs.filter(cand)
        uniq = pc.unique(cand_dirs)
        # a candidate file's store root depends on its directory only: one look-up per directory
        roots = [zarr_group_key(p) for p in paths.filter(cand).take(pc.index_in(uniq, value_set=cand_dirs)).to_pylist()]
        store_dirs = [d for d, r in zip(uniq.to_pylist(), roots, strict=True) if r is not None]
        if not store_dirs:
            return rb, dirs, []
        root_of = [r for r in roots if r is not None]
        pos = pc.index_in(dirs, value_set=pa.array(store_dirs, pa.string()))
        in_store = pc.and_(cand, pc.is_valid(pos))
        rows_in, pos_in = pc.indices_nonzero(in_store), pos.filter(in_store)
        by_root: dict[str, list[int]] = {}
        for k, r in enumerate(root_of):
            by_root.setdefault(r, []).append(k)
        ready: list[pa.RecordBatch] = []
        for root, ks in by_root.items():
            rows = rows_in if len(by_root) == 1 else rows_in.filter(
                pc.is_in(pos_in, value_set=pa.array(ks, pa.int32())))
            part = rb.take(rows)
            if root in self.large:
                ready.append(part)
                continue
            held = self.held.setdefault(root, [])
            held.append(part)
            if len(held) >= 64:  # many small takes (one per directory chunk) cost more in buffers than rows
                held[:] = [pa.Table.from_batches(held).combine_chunks().to_batches()[0]]
            self.counts[root] = self.counts.get(root, 0) + len(rows)
            if self.counts[root] > self.hold_files:  # too many to hold: write as it comes, per directory
                self.large.add(root)
                ready.append(pa.Table.from_batches(self.held.pop(root)).combine_chunks().to_batches()[0])
        keep = pc.invert(in_store)
        return rb.filter(keep), dirs.filter(keep), ready

    def finish(self) -> Iterator[pa.RecordBatch]:
        """Each held store's rows, one batch per store, in store-root order."""
        for root in sorted(self.held):
            batches = self.held.pop(root)
            yield pa.Table.from_batches(batches).combine_chunks().to_batches()[0]
