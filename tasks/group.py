"""Group stage: turn the crawl spool into groups, each with a provisional extractor.

Grouping works one directory at a time (the crawl spool keeps a directory's files
together), so memory is bounded by the largest directory, not the repository.
The extractor chosen here comes from the extension alone (no I/O); workers confirm
or correct it from the file's content when the extension is silent or ambiguous.
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from extractors.registry import AMBIGUOUS_EXTENSIONS, Registry, default_registry
from tasks.records import GROUP_SCHEMA, SpoolWriter, iter_spool

Row = dict[str, Any]
GrouperFn = Callable[[list[Row]], list[list[Row]]]


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
    """Write the groups spool (one row per file, a group's rows together); returns counts."""
    registry = registry or default_registry()
    try:
        grouper_fn = GROUPERS[grouper]
    except KeyError:
        raise ValueError(f"unknown grouper {grouper!r}; choose one of {sorted(GROUPERS)}") from None
    by_extractor: Counter[str] = Counter()
    n_groups = 0
    cols: dict[str, list[Any]] = {n: [] for n in GROUP_SCHEMA.names}
    with SpoolWriter(groups_spool, GROUP_SCHEMA) as spool:
        for rows in iter_directories(crawl_spool):
            for members in grouper_fn(rows):
                names: set[str] = set()
                for r in members:
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
                                       ("endpoint", r["endpoint"])):
                        cols[key].append(value)
            if len(cols["path"]) >= 50_000:
                spool.write_columns(cols)
                cols = {n: [] for n in GROUP_SCHEMA.names}
        spool.write_columns(cols)
        n_files = spool.rows
    return {"groups": n_groups, "files": n_files, "by_extractor": dict(by_extractor)}


def iter_groups(groups_spool: str) -> Iterator[dict[str, Any]]:
    """Groups back from the spool as the plain dicts workers take."""
    current: dict[str, Any] | None = None
    for cols in iter_spool(groups_spool):
        for gid, fp, path, size, mtime, ext, mime, ex, ep in zip(
            cols["group_id"], cols["fingerprint"], cols["path"], cols["size"], cols["mtime"],
            cols["extension"], cols["mime"], cols["extractor"], cols["endpoint"], strict=True,
        ):
            if current is None or current["group_id"] != gid:
                if current is not None:
                    yield current
                current = {"group_id": gid, "fingerprint": fp, "endpoint": ep, "extractor": ex, "files": []}
            current["files"].append({"path": path, "size": size, "mtime": mtime, "extension": ext, "mime": mime,
                                     "extractor": ex})
    if current is not None:
        yield current


@task(name="group", cache_policy=NO_CACHE, task_run_name="group-{endpoint_name}")
def group(crawl_spool: str, groups_spool: str, grouper: str, *, endpoint_name: str = "endpoint") -> dict[str, Any]:
    """Group the crawled files; counts by provisional extractor go to the log."""
    counts = group_spool(crawl_spool, groups_spool, grouper)
    get_run_logger().info("%d files in %d groups (%s); by extractor: %s", counts["files"], counts["groups"],
                          grouper, counts["by_extractor"])
    return counts
