"""Sink stage: make the metadata directory consistent with this run.

Group files were written atomically as batches finished; here the journal drops
groups this run no longer saw (their JSON goes too) and index.parquet is
rewritten from the journal, so every crawled file is in it exactly once.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import asdict
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from extractors.batch import remove_partial_files
from tasks.search import SearchError, index_path, update_index
from tasks.state import StateStore


def metadata_layout(out_dir: str) -> dict[str, str]:
    """Where everything lives under a metadata directory."""
    state = os.path.join(out_dir, ".xtract")
    return {
        "out": out_dir,
        "groups": os.path.join(out_dir, "groups"),
        "index": os.path.join(out_dir, "index.parquet"),
        "state": state,
        "crawl_spool": os.path.join(state, "crawl.parquet"),
        "groups_spool": os.path.join(state, "groups.parquet"),
    }


def remove_stray_group_files(groups_dir: str, known: set[str]) -> int:
    """Delete group files the journal does not hold: groups that left, or that a killed run wrote
    for files deleted before this run (the worker writes the file before the journal hears of it)."""
    removed = 0
    try:
        entries = os.scandir(groups_dir)
    except FileNotFoundError:
        return 0
    with entries:
        for entry in entries:
            name = entry.name
            if name.endswith(".json") and not name.startswith(".") and name[:-5] not in known:
                try:
                    os.unlink(entry.path)
                    removed += 1
                except FileNotFoundError:
                    pass
    return removed


def finalize_metadata(out_dir: str, run_id: str) -> dict[str, Any]:
    layout = metadata_layout(out_dir)
    state = StateStore(layout["state"])
    try:
        gone = state.forget_unseen(run_id)
        known = {gid for gid, *_ in state.iter_group_versions()}
        removed = remove_stray_group_files(layout["groups"], known)
        remove_partial_files(layout["groups"])  # a worker killed mid-write this run; all writers are done now
        rows = state.write_index(layout["index"], run_id)
        return {"index_rows": rows, "groups_removed": max(len(gone), removed), "counts": state.counts(run_id),
                "by_extractor": state.counts_by_extractor(run_id)}
    finally:
        state.close()


@task(name="sink", cache_policy=NO_CACHE, task_run_name="sink-{endpoint_name}")
def sink(out_dir: str, run_id: str, *, endpoint_name: str = "endpoint") -> dict[str, Any]:
    """Write index.parquet and drop metadata of files that are gone."""
    result = finalize_metadata(out_dir, run_id)
    get_run_logger().info("index.parquet: %d rows; %d stale groups removed", result["index_rows"],
                          result["groups_removed"])
    return result


@task(name="search-index", cache_policy=NO_CACHE, task_run_name="search-index-{endpoint_name}")
def update_search_index(out_dir: str, *, endpoint_name: str = "endpoint") -> dict[str, Any]:
    """Sync the local search index after the sink; a failure here costs search, not the run's metadata."""
    logger = get_run_logger()
    try:
        stats = update_index(out_dir)
    except (SearchError, sqlite3.Error) as exc:
        logger.warning("search index not updated (%s); `xtract search` rebuilds it on demand; "
                       "delete %s if it persists", exc, index_path(out_dir))
        return {"error": str(exc)}
    logger.info("search index: %d groups (%d files) indexed, %d removed in %.2fs", stats.groups_indexed,
                stats.files_indexed, stats.groups_removed, stats.seconds)
    return asdict(stats)
