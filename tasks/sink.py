"""Sink stage: make the metadata directory consistent with this run.

Group files were written atomically as batches finished; here the journal drops
groups this run no longer saw (their JSON goes too) and index.parquet is
rewritten from the journal, so every crawled file is in it exactly once.
"""

from __future__ import annotations

import os
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from extractors.batch import remove_partial_files
from tasks.results import Sunk
from tasks.store.journal import StateStore
from tasks.store.layout import MetadataDir


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


def finalize_metadata(out_dir: str, run_id: str, endpoint: str = "") -> dict[str, Any]:
    """Forget ``endpoint``'s groups this run did not see (other endpoints sharing OUT keep theirs); rewrite index."""
    layout = MetadataDir.of(out_dir)
    state = StateStore(layout.state, endpoint)
    try:
        gone = state.forget_unseen(run_id)
        known = {gid for gid, *_ in state.iter_group_versions()}
        removed = remove_stray_group_files(layout.groups, known)
        remove_partial_files(layout.groups)  # a worker killed mid-write this run; all writers are done now
        rows = state.write_index(layout.index, run_id)
        return {"index_rows": rows, "groups_removed": max(len(gone), removed), "counts": state.counts(run_id),
                "by_extractor": state.counts_by_extractor(run_id)}
    finally:
        state.close()


@task(name="sink", cache_policy=NO_CACHE, task_run_name="sink-{endpoint_name}")
def sink(out_dir: str, run_id: str, *, endpoint_name: str = "endpoint") -> Sunk:
    """Write index.parquet and drop metadata of files that are gone."""
    result = finalize_metadata(out_dir, run_id, endpoint_name)
    get_run_logger().info("index.parquet: %d rows; %d stale groups removed", result["index_rows"],
                          result["groups_removed"])
    return Sunk(**result)
