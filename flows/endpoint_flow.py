"""The per-endpoint flow: crawl -> group -> containers -> xtract -> sink [-> offload].

One flow run per XtractEndpoint; its id is the crawl id users ask about. The
stages exchange spool files, so the flow holds counts, never file lists.
"""

from __future__ import annotations

import os
import time
import uuid
from typing import Any, Literal

from prefect import flow, get_run_logger
from prefect.runtime import flow_run
from prefect.states import Completed

from tasks.containers import register_containers
from tasks.crawl import crawl
from tasks.executors import ExecutorSpec
from tasks.group import group
from tasks.offload import offload
from tasks.sink import metadata_layout, sink
from tasks.status import publish_crawl_status, publish_summary
from tasks.xtract import xtract
from xtract_blocks import XtractEndpoint

ExecutorKind = Literal["local", "dask", "globus-compute"]


class EndpointConfigError(ValueError):
    """The endpoint block cannot be run as configured (names the field at fault)."""


def resolve_endpoint(endpoint: XtractEndpoint | str) -> XtractEndpoint:
    if isinstance(endpoint, XtractEndpoint):
        return endpoint
    try:
        return XtractEndpoint.load(endpoint)
    except ValueError as exc:
        raise EndpointConfigError(f"no XtractEndpoint block named {endpoint!r}: {exc}") from None


def check_endpoint(ep: XtractEndpoint) -> None:
    """Fail before any work with a message naming what is wrong."""
    if not ep.dirs:
        raise EndpointConfigError("XtractEndpoint.dirs is empty: name at least one directory to crawl")
    if ep.repo_type == "local":
        missing = [d for d in ep.dirs if not os.path.exists(os.path.expanduser(d))]
        if missing:
            raise EndpointConfigError(f"path does not exist: {missing[0]}")
    out = os.path.abspath(os.path.expanduser(ep.local_mdata_path))
    try:
        os.makedirs(out, exist_ok=True)
        probe = os.path.join(out, f".write-test-{uuid.uuid4().hex}")
        with open(probe, "w"):
            pass
        os.unlink(probe)
    except OSError as exc:
        raise EndpointConfigError(f"metadata directory {out} is not writable: {exc.strerror or exc}") from None


@flow(name="xtract-endpoint", log_prints=True)
def xtract_endpoint(
    endpoint: XtractEndpoint | str,
    executor: ExecutorKind = "local",
    workers: int | None = None,
    batch_size: int | None = None,
    time_limit_s: float = 120.0,
    dest_path: str | None = None,
    delete_source: bool = False,
) -> Any:
    """Crawl one endpoint, extract metadata for every group, write it, optionally offload it.

    Args:
        endpoint: an XtractEndpoint block, or the name of a saved one.
        executor: where extractors run: local processes, Dask, or Globus Compute.
        workers: worker processes for the local executor (default: all cores).
        batch_size: groups per executor call (default: sized to the run).
        time_limit_s: wall-time limit per group; a group past it becomes an error record.
        dest_path: when set, copy the metadata under dest_path/YYYY-MM-DD-hh:mm:ss/.
        delete_source: remove the local metadata after a verified offload.
    """
    started = time.perf_counter()
    logger = get_run_logger()
    ep = resolve_endpoint(endpoint)
    check_endpoint(ep)
    name = ep.slug()
    run_id = flow_run.id or uuid.uuid4().hex
    out = os.path.abspath(os.path.expanduser(ep.local_mdata_path))
    layout = metadata_layout(out)

    crawled = crawl(ep, layout["crawl_spool"], endpoint_name=name)
    grouped = group(layout["crawl_spool"], layout["groups_spool"], ep.grouper, endpoint_name=name)
    publish_crawl_status(name, run_id, crawled, grouped["groups"])
    register_containers(grouped["by_extractor"], executor, endpoint_name=name)
    spec = ExecutorSpec(kind=executor, workers=workers)
    counters = xtract(layout["groups_spool"], out, run_id, spec, total_groups=grouped["groups"],
                      endpoint_name=name, batch_size=batch_size, limit_s=time_limit_s)
    sunk = sink(out, run_id, endpoint_name=name)

    counts = sunk["counts"]
    summary: dict[str, Any] = {
        "endpoint": name,
        "files_crawled": crawled["files"],
        "bytes_crawled": crawled["bytes"],
        "dirs_failed": crawled["dirs_failed"],
        "groups": grouped["groups"],
        "extracted": counts.get("ok", 0),
        "failed": counts.get("error", 0),
        "unknown": counts.get("unknown", 0),
        "skipped": counts.get("skipped", 0),
        "metadata_dir": out,
        "flow_run_id": str(run_id),
        "xtract_counters": {k: counters[k] for k in ("cumu_orch_enter", "cumu_pulled", "cumu_scheduled",
                                                     "cumu_to_schedule", "flagged_unknown")}
        | {"fx": {"pending": counters["fx_pending"], "success": counters["fx_success"],
                  "failed": counters["fx_failed"]}},
    }
    if dest_path:
        summary["offload_path"] = offload({name: out}, dest_path, delete_source=delete_source)["path"]
    summary["seconds"] = round(time.perf_counter() - started, 3)
    publish_summary(name, summary, sunk["by_extractor"])
    message = (f"{summary['files_crawled']} files in {summary['groups']} groups: {summary['extracted']} extracted, "
               f"{summary['failed']} failed, {summary['unknown']} unknown, {summary['skipped']} skipped")
    logger.info(message)
    return Completed(message=message, data=summary)
