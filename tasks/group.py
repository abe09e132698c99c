"""Group stage: turn the crawl spool into groups, each with a provisional extractor.

Grouping works one directory at a time (the crawl spool keeps a directory's files
together), so memory is bounded by the largest directory, not the repository. Zarr
stores are the exception: a store spans directories, so its rows are held aside and
each store is written as one group at the end (tasks/group_zarr.py, bounded per store).
The extractor chosen here comes from the extension alone (no I/O); workers confirm
or correct it from the file's content when the extension is silent or ambiguous.
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pyarrow as pa
import pyarrow.compute as pc
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from extractors.registry import AMBIGUOUS_EXTENSIONS, Registry, default_registry
from extractors.zarr_store import ZARR, zarr_group_key
from tasks.group_zarr import HOLD_FILES, StoreHold, store_parts, store_ranges
from tasks.results import Grouped
from tasks.store.arrow_columns import column, string_scalar, strings
from tasks.store.records import GROUP_SCHEMA, SpoolWriter, inode_column, iter_spool, iter_spool_batches

Row = dict[str, Any]
GrouperFn = Callable[[list[Row]], list[list[Row]]]
T = TypeVar("T")

#: A group above this many files or bytes is split into parts of at most this size (path order): one
#: directory of 60,000 files is then many groups that spread over the workers, each with its own time
#: limit, instead of one group on one worker that times out (docs/reliability.md).
MAX_GROUP_FILES = 1000
MAX_GROUP_BYTES = 2 * 1024**3


def split_large(members: list[T], size_of: Callable[[T], int], *, max_files: int = MAX_GROUP_FILES,
                max_bytes: int = MAX_GROUP_BYTES) -> list[list[T]]:
    """``members`` (already in path order) cut into consecutive parts within both bounds; one part if small."""
    if len(members) <= max_files and sum(size_of(m) for m in members) <= max_bytes:
        return [members]
    parts: list[list[T]] = []
    cur: list[T] = []
    size = 0
    for m in members:
        b = size_of(m)
        if cur and (len(cur) >= max_files or size + b > max_bytes):
            parts.append(cur)
            cur, size = [], 0
        cur.append(m)
        size += b
    if cur:
        parts.append(cur)
    return parts


def group_file_is_group(rows: list[Row]) -> list[list[Row]]:
    return [[r] for r in rows]


def group_directory(rows: list[Row]) -> list[list[Row]]:
    return [rows] if rows else []


def _stem(path: str) -> str:
    name = os.path.basename(path)
    if name.startswith("."):
        return name
    return name.split(".", 1)[0]


def group_related(rows: list[Row]) -> list[list[Row]]:
    """Files of one directory sharing a stem (``scan.hdr`` + ``scan.img``, shapefile parts)."""
    by_stem: dict[str, list[Row]] = {}
    for r in rows:
        by_stem.setdefault(_stem(r["path"]), []).append(r)
    return list(by_stem.values())


GROUPERS: dict[str, GrouperFn] = {
    "file_is_group": group_file_is_group,
    "directory": group_directory,
    "related": group_related,
}


def group_id_of(paths: list[str]) -> str:
    """Deterministic id from the member paths, so reruns find the same group."""
    h = hashlib.sha1()
    for p in sorted(paths):
        h.update(p.encode("utf-8", "surrogateescape"))
        h.update(b"\0")
    return h.hexdigest()[:24]


def fingerprint_of(rows: list[Row], extractor_key: str) -> str:
    """Content fingerprint: paths, sizes, mtimes and the extractor version(s)."""
    h = hashlib.sha1(extractor_key.encode())
    for r in sorted(rows, key=lambda r: r["path"]):
        h.update(f"\0{r['path']}\0{r['size']}\0{r['mtime']!r}".encode("utf-8", "surrogateescape"))
    return h.hexdigest()[:24]


def iter_directories(spool_path: str) -> Iterator[list[Row]]:
    """Rows of the crawl spool, one directory's files at a time."""
    current: str | None = None
    rows: list[Row] = []
    for cols in iter_spool(spool_path):
        names = list(cols)
        for values in zip(*(cols[n] for n in names), strict=True):
            row = dict(zip(names, values, strict=True))
            d = os.path.dirname(row["path"])
            if d != current and rows:
                yield rows
                rows = []
            current = d
            rows.append(row)
    if rows:
        yield rows


def group_spool(crawl_spool: str, groups_spool: str, grouper: str,
                registry: Registry | None = None) -> dict[str, Any]:
    """Write the groups spool (one row per file, a group's rows together); returns counts.

    The built-in groupers run columnar (Arrow kernels for names, extensions and keys;
    Python only for the two hashes per group), a custom grouper row by row.
    """
    registry = registry or default_registry()
    try:
        grouper_fn = GROUPERS[grouper]
    except KeyError:
        raise ValueError(f"unknown grouper {grouper!r}; choose one of {sorted(GROUPERS)}") from None
    key_kind = _VECTOR_KEYS.get(grouper_fn)
    if key_kind is not None:
        return _group_columnar(crawl_spool, groups_spool, key_kind, registry)
    return _group_rows(crawl_spool, groups_spool, grouper_fn, registry)


#: The built-in groupers and the columnar key each stands for.
_VECTOR_KEYS: dict[GrouperFn, str] = {group_file_is_group: "file", group_directory: "dir", group_related: "stem"}


class _ExtensionTable:
    """Per-extension (mime, extractor, fingerprint key), resolved once per distinct extension."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.known: dict[str, tuple[str | None, str | None, str]] = {}

    def columns(self, extensions: pa.Array) -> tuple[pa.Array, pa.Array, list[str]]:
        uniq = pc.unique(extensions)
        facts = [self._facts(e) for e in uniq.to_pylist()]
        idx = pc.index_in(extensions, value_set=uniq)
        mimes = strings([f[0] for f in facts]).take(idx)
        names = strings([f[1] for f in facts]).take(idx)
        keys = [facts[i][2] for i in idx.to_pylist()]  # not to_numpy(): it imports pandas
        return mimes, names, keys

    def _facts(self, ext: str | None) -> tuple[str | None, str | None, str]:
        ext = ext or ""
        if ext not in self.known:
            mime, ex = self.registry.for_extension(ext)
            auto = ex is None or ext in AMBIGUOUS_EXTENSIONS
            key = f"auto:{self.registry.signature}" if auto else f"{ex.name}={ex.version}"  # type: ignore[union-attr]
            self.known[ext] = (mime, None if ex is None else ex.name, key)
        return self.known[ext]


def _iter_directory_chunks(spool_path: str, batch_rows: int = 8192) -> Iterator[tuple[pa.RecordBatch, pa.Array]]:
    """(rows, their directories) in chunks that never split a directory (a crawl keeps one together)."""
    carry: pa.Table | None = None
    for rb in iter_spool_batches(spool_path, batch_rows):
        table = pa.Table.from_batches([rb]) if carry is None else pa.concat_tables([carry, pa.Table.from_batches([rb])])
        dirs = pc.replace_substring_regex(table.column("path"), r"/[^/]*$", "")
        same = pc.equal(dirs, dirs[-1]).to_pylist()
        cut = len(same)
        while cut > 0 and same[cut - 1]:
            cut -= 1
        if cut == 0:  # one directory so far: keep reading
            carry = table
            continue
        carry = table.slice(cut)
        done = table.slice(0, cut).combine_chunks()
        yield done.to_batches()[0], dirs.slice(0, cut).combine_chunks()
    if carry is not None and carry.num_rows:
        table = carry.combine_chunks()
        yield table.to_batches()[0], pc.replace_substring_regex(table.column("path"), r"/[^/]*$", "").combine_chunks()


def _hash_parts(parts: list[list[int]], paths: list[str], sizes: list[int], mtimes: list[float],
                keys: list[str]) -> tuple[list[int], list[str], list[str]]:
    """(row order, group id per row, fingerprint per row) of ``parts`` (row indices), as ``group_id_of`` and
    ``fingerprint_of`` give them; a one-file group skips the sorting."""
    sha1 = hashlib.sha1
    order: list[int] = []
    gids: list[str] = []
    fps: list[str] = []
    for rows in parts:
        if len(rows) == 1:  # most groups of most trees: the same hashes, without the sorting
            i = rows[0]
            order.append(i)
            gids.append(sha1(f"{paths[i]}\0".encode("utf-8", "surrogateescape")).hexdigest()[:24])
            fps.append(sha1(f"{keys[i]}\0{paths[i]}\0{sizes[i]}\0{mtimes[i]!r}".encode(
                "utf-8", "surrogateescape")).hexdigest()[:24])
            continue
        ranked = sorted(rows, key=paths.__getitem__)
        gid = group_id_of([paths[i] for i in ranked])
        fkey = "|".join(sorted({keys[i] for i in rows}))
        h = sha1(fkey.encode())
        for i in ranked:
            h.update(f"\0{paths[i]}\0{sizes[i]}\0{mtimes[i]!r}".encode("utf-8", "surrogateescape"))
        fp = h.hexdigest()[:24]
        order.extend(rows)
        gids.extend([gid] * len(rows))
        fps.extend([fp] * len(rows))
    return order, gids, fps


def _group_batch(rb: pa.RecordBatch, gids: list[str], fps: list[str], mimes: pa.Array, names: pa.Array,
                 order: list[int] | None) -> pa.RecordBatch:
    """The groups-spool batch of ``rb``'s rows, members of a group together when ``order`` is given."""
    out = pa.record_batch([
        strings(gids), strings(fps),
        rb.column("path"), rb.column("size"), rb.column("mtime"), rb.column("extension"),
        mimes, names, rb.column("endpoint"), inode_column(rb),
    ], schema=GROUP_SCHEMA)
    if order is not None:  # group members together, groups in order of first appearance
        take = column(order, pa.int64())
        out = pa.record_batch([out.column(0), out.column(1)] + [out.column(i).take(take) for i in range(2, 10)],
                              schema=GROUP_SCHEMA)
    return out


def _store_facts(rb: pa.RecordBatch, table: _ExtensionTable) -> tuple[pa.Array, pa.Array, list[str]]:
    """(mime, extractor, fingerprint key) of a Zarr store's rows: the ``zarr`` extractor's, when registered."""
    zarr = table.registry.by_name.get(ZARR.name)
    if zarr is None:
        return table.columns(rb.column("extension"))
    n = len(rb)
    return (pa.repeat(string_scalar("application/x-zarr"), n), pa.repeat(string_scalar(zarr.name), n),
            [f"{zarr.name}={zarr.version}"] * n)


#: Rows of one store hashed and written at a time (its groups are contiguous ranges of its sorted rows).
STORE_SLICE_ROWS = 8192


def _store_batches(rb: pa.RecordBatch, table: _ExtensionTable, large: bool) -> Iterator[tuple[pa.RecordBatch, int]]:
    """Groups-spool batches of one Zarr store's rows (whole store, or complete directories of a large one), with
    the number of groups in each; Python lists only for a slice of ``STORE_SLICE_ROWS`` rows at a time."""
    rb, ranges = store_ranges(rb, large, split_large)
    mimes, names, keys = _store_facts(rb, table)
    start = 0
    while start < len(ranges):
        s0 = ranges[start][0]
        end = start + 1
        while end < len(ranges) and ranges[end][1] - s0 <= STORE_SLICE_ROWS:
            end += 1
        s1 = ranges[end - 1][1]
        sub = rb.slice(s0, s1 - s0)
        parts = [list(range(a - s0, b - s0)) for a, b in ranges[start:end]]
        _, gids, fps = _hash_parts(parts, sub.column("path").to_pylist(), sub.column("size").to_pylist(),
                                   sub.column("mtime").to_pylist(), keys[s0:s1])
        yield _group_batch(sub, gids, fps, mimes.slice(s0, s1 - s0), names.slice(s0, s1 - s0), None), end - start
        start = end


def _group_columnar(crawl_spool: str, groups_spool: str, key_kind: str, registry: Registry, *,
                    hold_files: int = HOLD_FILES) -> dict[str, Any]:
    by_extractor: Counter[str] = Counter()
    n_groups = 0
    table = _ExtensionTable(registry)
    sha1 = hashlib.sha1
    stores = StoreHold(hold_files)

    def write(out: pa.RecordBatch) -> None:
        spool.write_batch(out)
        for vc in pc.value_counts(out.column("extractor")).to_pylist():
            by_extractor[vc["values"] or "auto"] += vc["counts"]

    with SpoolWriter(groups_spool, GROUP_SCHEMA) as spool:
        for whole, whole_dirs in _iter_directory_chunks(crawl_spool):
            rb, dirs, ready = stores.take(whole, whole_dirs)
            for store_rows in ready:  # a store too large to hold: its complete directories now
                for out, n in _store_batches(store_rows, table, large=True):
                    write(out)
                    n_groups += n
            if not len(rb):
                continue
            mimes, names, keys = table.columns(rb.column("extension"))
            paths = rb.column("path").to_pylist()
            sizes = rb.column("size").to_pylist()
            mtimes = rb.column("mtime").to_pylist()
            if key_kind == "file":
                order = None
                gids = [sha1(f"{p}\0".encode("utf-8", "surrogateescape")).hexdigest()[:24] for p in paths]
                fps = [sha1(f"{k}\0{p}\0{s}\0{m!r}".encode("utf-8", "surrogateescape")).hexdigest()[:24]
                       for k, p, s, m in zip(keys, paths, sizes, mtimes, strict=True)]
                n_groups += len(paths)
            else:
                group_keys = dirs if key_kind == "dir" else pc.binary_join_element_wise(
                    dirs, _stems(rb.column("path")), string_scalar("/"))
                members: dict[str, list[int]] = {}
                for i, k in enumerate(group_keys.to_pylist()):
                    members.setdefault(k, []).append(i)
                parts = [part for rows in members.values()
                         for part in split_large(sorted(rows, key=paths.__getitem__), sizes.__getitem__)]
                order, gids, fps = _hash_parts(parts, paths, sizes, mtimes, keys)
                n_groups += len(parts)
            write(_group_batch(rb, gids, fps, mimes, names, order))
        for store_rows in stores.finish():  # every store small enough to hold: one group (or split_large parts)
            for out, n in _store_batches(store_rows, table, large=False):
                write(out)
                n_groups += n
        n_files = spool.rows
    return {"groups": n_groups, "files": n_files, "by_extractor": dict(by_extractor)}


def _stems(paths: pa.Array) -> pa.Array:
    """``_stem`` of each path: the base name up to its first dot; a dot file keeps its whole name."""
    base = pc.replace_substring_regex(paths, r"^.*/", "")
    head = pc.replace_substring_regex(base, r"\..*$", "")
    return pc.if_else(pc.starts_with(base, "."), base, head)


def _group_rows(crawl_spool: str, groups_spool: str, grouper_fn: GrouperFn, registry: Registry, *,
                hold_files: int = HOLD_FILES) -> dict[str, Any]:
    """Row-by-row grouping, for groupers given as a Python function over a directory's rows.

    Zarr stores are held aside and written at the end, one group each (tasks/group_zarr.py); a store above
    ``hold_files`` is cut per directory, as the columnar path does (same groups; it writes them earlier).
    """
    by_extractor: Counter[str] = Counter()
    n_groups = 0
    cols: dict[str, list[Any]] = {n: [] for n in GROUP_SCHEMA.names}
    zarr = registry.by_name.get(ZARR.name)
    held: dict[str, list[Row]] = {}

    def emit(members: list[Row], in_store: bool) -> None:
        nonlocal n_groups
        names: set[str] = set()
        for r in members:
            if in_store and zarr is not None:
                r["_mime"], r["_extractor"] = "application/x-zarr", zarr.name
                names.add(f"{zarr.name}={zarr.version}")
                continue
            mime, ex = registry.for_extension(r["extension"])
            auto = ex is None or r["extension"] in AMBIGUOUS_EXTENSIONS
            r["_mime"], r["_extractor"] = mime, (None if ex is None else ex.name)
            names.add(f"auto:{registry.signature}" if auto else f"{ex.name}={ex.version}")
        gid = group_id_of([r["path"] for r in members])
        fp = fingerprint_of(members, "|".join(sorted(names)))
        n_groups += 1
        for r in members:
            by_extractor[r["_extractor"] or "auto"] += 1
            for key, value in (("group_id", gid), ("fingerprint", fp), ("path", r["path"]),
                               ("size", r["size"]), ("mtime", r["mtime"]), ("extension", r["extension"]),
                               ("mime", r["_mime"]), ("extractor", r["_extractor"]),
                               ("endpoint", r["endpoint"]), ("inode", r.get("inode"))):
                cols[key].append(value)

    def size_of(r: Row) -> int:
        return r["size"]

    with SpoolWriter(groups_spool, GROUP_SCHEMA) as spool:
        for all_rows in iter_directories(crawl_spool):
            rows = []
            for r in all_rows:
                root = zarr_group_key(r["path"])
                (rows if root is None else held.setdefault(root, [])).append(r)
            for members in (part for found in grouper_fn(rows)
                            for part in split_large(sorted(found, key=lambda r: r["path"]), size_of)):
                emit(members, False)
            if len(cols["path"]) >= 50_000:
                spool.write_columns(cols)
                cols = {n: [] for n in GROUP_SCHEMA.names}
        for root in sorted(held):
            store = sorted(held.pop(root), key=lambda r: r["path"])
            for members in store_parts(store, lambda r: r["path"].rpartition("/")[0],
                                       lambda rows: split_large(rows, size_of), len(store) > hold_files):
                emit(members, True)
        spool.write_columns(cols)
        n_files = spool.rows
    return {"groups": n_groups, "files": n_files, "by_extractor": dict(by_extractor)}


def iter_groups(groups_spool: str) -> Iterator[dict[str, Any]]:
    """Groups back from the spool as the plain dicts workers take."""
    current: dict[str, Any] | None = None
    for cols in iter_spool(groups_spool):
        inodes = cols.get("inode") or [None] * len(cols["path"])  # none in a spool from before inodes
        for gid, fp, path, size, mtime, ext, mime, ex, ep, ino in zip(
            cols["group_id"], cols["fingerprint"], cols["path"], cols["size"], cols["mtime"],
            cols["extension"], cols["mime"], cols["extractor"], cols["endpoint"], inodes, strict=True,
        ):
            if current is None or current["group_id"] != gid:
                if current is not None:
                    yield current
                current = {"group_id": gid, "fingerprint": fp, "endpoint": ep, "extractor": ex, "files": []}
            current["files"].append({"path": path, "size": size, "mtime": mtime, "extension": ext, "mime": mime,
                                     "extractor": ex, "inode": ino})
    if current is not None:
        yield current


@task(name="group", cache_policy=NO_CACHE, task_run_name="group-{endpoint_name}")
def group(crawl_spool: str, groups_spool: str, grouper: str, *, endpoint_name: str = "endpoint") -> Grouped:
    """Group the crawled files; counts by provisional extractor go to the log."""
    counts = group_spool(crawl_spool, groups_spool, grouper)
    get_run_logger().info("%d files in %d groups (%s); by extractor: %s", counts["files"], counts["groups"],
                          grouper, counts["by_extractor"])
    return Grouped(groups=counts["groups"], files=counts["files"], by_extractor=counts["by_extractor"])
