"""The per-endpoint flow: crawl -> group -> containers -> xtract -> sink [-> offload].

One flow run per XtractEndpoint; its id is the crawl id users ask about. The
stages exchange spool files, so the flow holds counts, never file lists.
"""

from __future__ import annotations

import importlib
import os
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any, Literal, get_type_hints

from prefect import flow, get_run_logger
from prefect.runtime import flow_run
from prefect.states import Completed

from flows.client_forms import BlockSelector
from flows.client_spool import crawl_spool_totals
from flows.globus_habitat import extraction_spec, globus_problem, ingest_to_search, offload_by_globus
from tasks.containers import register_containers
from tasks.crawl import crawl
from tasks.executors import start_worker_server
from tasks.fetch_staging import with_fetch_staging
from tasks.group import group
from tasks.offload import offload
from tasks.sink import metadata_layout, sink, update_search_index
from tasks.status import publish_crawl_status, publish_summary
from tasks.xtract import xtract
from xtract_blocks import XtractEndpoint
from xtract_blocks.compute import GlobusComputeSettings
from xtract_blocks.endpoint import Grouper

ExecutorKind = Literal["local", "dask", "globus-compute"]
#: "crawl" stops after crawl+group (the seed's crawl()); "xtract" reuses that crawl's spool (the seed's xtract()).
Stage = Literal["all", "crawl", "xtract"]


class StageClock:
    """Wall seconds per stage, for the summary: where a run's time went, without reading its logs."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] = round(time.perf_counter() - started, 3)


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
    if not ep.dirs and not ep.file_lists:
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
    endpoint: Annotated[XtractEndpoint, BlockSelector()] | str,
    executor: ExecutorKind = "local",
    workers: int | None = None,
    batch_size: int | None = None,
    time_limit_s: float = 120.0,
    dest_path: str | None = None,
    delete_source: bool = False,
    stage: Stage = "all",
    dirs: list[str] | None = None,
    grouper: Grouper | None = None,
    dest_endpoint_id: str | None = None,
    search_index_id: str | None = None,
    search_visible_to: list[str] | None = None,
    transfer_timeout_s: float = 3600.0,
    dask_address: str | None = None,
    compute_settings: Annotated[GlobusComputeSettings, BlockSelector()] | str | None = None,
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
        stage: all stages, only crawl+group, or only extraction from the last crawl's spool.
        dirs: overrides the block's dirs for this run (deployments: one block, several trees).
        grouper: overrides the block's grouper for this run.
        dest_endpoint_id: offload by Globus transfer to dest_path on this collection (docs/globus.md).
        search_index_id: ingest the metadata into this Globus Search index (default: the block's).
        search_visible_to: who may see the Search entries (default ["public"]).
        transfer_timeout_s: how long a staging or offload transfer may take before it is cancelled.
        dask_address: scheduler of an existing Dask cluster (executor 'dask'; default: a LocalCluster).
        compute_settings: GlobusComputeSettings (or its block name) for executor 'globus-compute' (docs/compute.md).
    """
    started = time.perf_counter()
    logger = get_run_logger()
    ep = resolve_endpoint(endpoint)
    overrides = {k: v for k, v in (("dirs", dirs), ("grouper", grouper)) if v is not None}
    if overrides:
        ep = ep.model_copy(update=overrides)  # keeps the block name, so artifact keys stay put
    check_endpoint(ep)
    index_id = search_index_id or ep.search_index_id
    settings = GlobusComputeSettings.load(compute_settings) if isinstance(compute_settings, str) else compute_settings
    problem = globus_problem(ep, dest_endpoint_id=dest_endpoint_id, search_index_id=index_id, executor=executor,
                             compute_settings=settings)
    if problem:
        raise EndpointConfigError(problem)
    name = ep.slug()
    run_id = flow_run.id or uuid.uuid4().hex
    out = os.path.abspath(os.path.expanduser(ep.local_mdata_path))
    layout = metadata_layout(out)
    if executor == "local" and stage != "crawl":
        start_worker_server()  # workers' imports overlap the crawl

    clock = StageClock()
    with clock("crawl"):
        if stage == "xtract":  # extraction of an earlier crawl: its spool is the file list
            crawled = crawl_spool_totals(layout["crawl_spool"])
        else:
            crawled = crawl(ep, layout["crawl_spool"], endpoint_name=name)
    with clock("group"):
        grouped = group(layout["crawl_spool"], layout["groups_spool"], ep.grouper, endpoint_name=name)
    if stage != "xtract":
        publish_crawl_status(name, run_id, crawled, grouped["groups"])
    if stage == "crawl":
        message = f"crawled {crawled['files']} files ({crawled['bytes']} bytes) in {grouped['groups']} groups"
        logger.info(message)
        return Completed(message=message, data={
            "endpoint": name, "stage": stage, "files_crawled": crawled["files"], "bytes_crawled": crawled["bytes"],
            "groups": grouped["groups"], "metadata_dir": out, "flow_run_id": str(run_id)})
    spec = extraction_spec(ep, executor, workers, out, transfer_timeout_s=transfer_timeout_s,
                           compute_settings=settings)
    if dask_address or executor == "globus-compute":
        # imported here: the Globus Compute SDK is heavy and starts a thread at import
        from tasks.executor_compute import with_remote_options

        spec = with_remote_options(spec, dask_address=dask_address, endpoint_id=ep.funcx_ep_id,
                                   credentials=ep.credentials, settings=settings)
    register_containers(grouped["by_extractor"], executor, endpoint_name=name,
                        compute=spec.options if executor == "globus-compute" else None)
    spec = with_fetch_staging(ep, spec, out)  # https/fsspec: each batch is downloaded before extraction
    # The report needs pandas (~0.4 s to import): imported while the workers extract, not after them.
    threading.Thread(target=importlib.import_module, args=("flows.report.publish",), daemon=True,
                     name="xtract-import-report").start()
    with clock("xtract"):
        counters = xtract(layout["groups_spool"], out, run_id, spec, total_groups=grouped["groups"],
                          endpoint_name=name, batch_size=batch_size, limit_s=time_limit_s)
    with clock("sink"):
        sunk = sink(out, run_id, endpoint_name=name)
    with clock("search_index"):
        update_search_index(out, endpoint_name=name)
    with clock("report"):
        from flows.report.publish import publish_run_report

        report_path = publish_run_report(name, out)  # OUT/report.html + artifacts; before any offload moves OUT

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
    summary["report"] = report_path
    if index_id:
        summary["search"] = ingest_to_search(ep, index_id, out, visible_to=search_visible_to, endpoint_name=name)
    if dest_path and dest_endpoint_id:
        summary["offload_path"] = offload_by_globus(ep, {name: out}, dest_endpoint_id, dest_path,
                                                    delete_source=delete_source, timeout_s=transfer_timeout_s)["path"]
    elif dest_path:
        summary["offload_path"] = offload({name: out}, dest_path, delete_source=delete_source)["path"]
    summary["seconds"] = round(time.perf_counter() - started, 3)
    summary["stage_seconds"] = clock.seconds
    publish_summary(name, summary, sunk["by_extractor"])
    message = (f"{summary['files_crawled']} files in {summary['groups']} groups: {summary['extracted']} extracted, "
               f"{summary['failed']} failed, {summary['unknown']} unknown, {summary['skipped']} skipped")
    logger.info(message)
    return Completed(message=message, data=summary)


# A served deployment (flow.serve / `xtract serve`) runs this function cloudpickled by value, with only the
# globals its body uses, so string annotations (from __future__) would no longer resolve and every served run
# would fail parameter validation. Resolved once here, they travel with the function.
xtract_endpoint.fn.__annotations__ = get_type_hints(xtract_endpoint.fn, include_extras=True)
