"""Search-index stage: keep the local full-text index and the facts current, and optionally ingest into Globus Search.

Both run after the sink; a failure of the local index costs search, not the run's metadata.
"""

from __future__ import annotations

import sqlite3
from dataclasses import asdict
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from tasks.habitats.globus import ingest_to_search
from tasks.store.search import index_path, update_index
from xtract_blocks import XtractEndpoint
from xtract_blocks.errors import SearchError


@task(name="search-index", cache_policy=NO_CACHE, task_run_name="search-index-{endpoint_name}")
def update_search_index(out_dir: str, *, endpoint_name: str = "endpoint") -> dict[str, Any]:
    """Sync the local search index after the sink."""
    logger = get_run_logger()
    try:
        stats = update_index(out_dir)
    except (SearchError, sqlite3.Error) as exc:
        logger.warning("search index not updated (%s); `xtract search` rebuilds it on demand; "
                       "delete %s if it persists", exc, index_path(out_dir))
        return {"error": str(exc)}
    logger.info("search index: %d groups (%d files) indexed, %d removed in %.2fs; facts: %d groups read, "
                "%d rows written in %.2fs", stats.groups_indexed, stats.files_indexed, stats.groups_removed,
                stats.seconds - stats.facts_seconds, stats.facts_groups, stats.facts_rows, stats.facts_seconds)
    return asdict(stats)


@task(name="search-ingest", cache_policy=NO_CACHE, task_run_name="search-ingest-{endpoint_name}")
def search_ingest(endpoint: XtractEndpoint, index_id: str, out_dir: str, *, visible_to: list[str] | None = None,
                  endpoint_name: str = "endpoint") -> dict[str, Any]:
    """Ingest this run's new or changed group metadata into a Globus Search index."""
    report = ingest_to_search(endpoint, index_id, out_dir, visible_to=visible_to)
    get_run_logger().info("search ingest into %s: %d entries in %d batch(es); %d too large", index_id,
                          report["entries"], report["batches"], len(report["too_large"]))
    return report
