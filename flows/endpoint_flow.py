"""The per-endpoint flow: resolve, validate, crawl, group, containers, xtract, sink, index, report, offload.

One flow run per XtractEndpoint; its id is the crawl id users ask about. The flow
reads top to bottom with no habitat or executor branching: the endpoint's habitat
(tasks/habitats) and the pool planner (tasks/pools/plan.py) make those decisions.
The stages exchange spool files and small dataclasses (tasks/results.py), never
file lists.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Annotated, Any, Literal, get_type_hints

from prefect import flow, get_run_logger
from prefect.runtime import flow_run
from prefect.states import Completed, Failed, State

from flows.client_forms import BlockSelector
from flows.client_status import FLUSH_QUEUE_TAG, crawl_of_tags
from flows.startup import import_in_background
from tasks.artifacts import artifact_key
from tasks.containers import register_containers
from tasks.crawl import crawl, recorded_crawl
from tasks.group import group
from tasks.habitats import RunNeeds, validate_endpoint
from tasks.observers import notify
from tasks.offload import OffloadOptions, offload
from tasks.pools.options import ExtractionOptions
from tasks.pools.plan import load_compute_settings, plan_pool
from tasks.pools.process import start_worker_server
from tasks.results import RunSummary
from tasks.search_index import search_ingest, update_search_index
from tasks.sink import sink
from tasks.status import publish_crawl_status, publish_summary, settle_status
from tasks.store.endpoint_crawls import crawl_to_extract, prune_crawls, record_crawl
from tasks.store.flush_queue import prune_queues
from tasks.store.layout import MetadataDir
from tasks.store.state_lock import StateLocked, state_lock
from tasks.xtract import xtract
from xtract_blocks import XtractEndpoint
from xtract_blocks.compute import GlobusComputeSettings
from xtract_blocks.endpoint import Grouper
from xtract_blocks.errors import ConfigurationError

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


def resolve_endpoint(endpoint: XtractEndpoint | str, *, dirs: list[str] | None = None,
                     grouper: str | None = None, exclude: list[str] | None = None) -> XtractEndpoint:
    """The block (loaded by name when given one), with this run's overrides of dirs and grouper (+ excludes)."""
    if isinstance(endpoint, str):
        try:
            endpoint = XtractEndpoint.load(endpoint)
        except ValueError as exc:
            raise ConfigurationError(f"no XtractEndpoint block named {endpoint!r}: {exc}") from None
    overrides: dict[str, Any] = {k: v for k, v in (("dirs", dirs), ("grouper", grouper)) if v is not None}
    if exclude:
        overrides["exclude"] = [*endpoint.exclude, *[e for e in exclude if e not in endpoint.exclude]]
    return endpoint.model_copy(update=overrides) if overrides else endpoint  # keeps the block name


def check_metadata_dir(out: MetadataDir) -> None:
    """OUT must be creatable and writable before any work."""
    try:
        os.makedirs(out.root, exist_ok=True)
        probe = os.path.join(out.root, f".write-test-{uuid.uuid4().hex}")
        with open(probe, "w"):
            pass
        os.unlink(probe)
    except OSError as exc:
        raise ConfigurationError(f"metadata directory {out.root} is not writable: {exc.strerror or exc}") from None


def run_name() -> str:
    """Flow-run names people can read: the endpoint's name (block name, else dir + digest) and the stage."""
    params = flow_run.parameters or {}
    stage = params.get("stage") or "all"
    try:
        ep = params.get("endpoint")
        if isinstance(ep, dict):
            ep = XtractEndpoint(**{k: v for k, v in ep.items() if k != "credentials"})
        name = artifact_key(ep)[:40] if isinstance(ep, str) else ep.slug()
    except Exception:  # noqa: BLE001 - a name must never fail a run; validation reports the real problem
        name = "xtract"
    return f"{name}-{stage}"


@flow(name="xtract-endpoint", log_prints=True, flow_run_name=run_name)
def xtract_endpoint(
    endpoint: Annotated[XtractEndpoint, BlockSelector()] | str,
    extraction: ExtractionOptions | None = None,
    offload_to: OffloadOptions | None = None,
    stage: Stage = "all",
    dirs: list[str] | None = None,
    grouper: Grouper | None = None,
    compute_settings: Annotated[GlobusComputeSettings, BlockSelector()] | str | None = None,
) -> Any:
    """Crawl one endpoint, extract metadata for every group, write it, optionally offload it.

    Args:
        endpoint: an XtractEndpoint block, or the name of a saved one.
        extraction: where and how extractors run (executor, workers, batch size, time limit, Dask, Compute).
        offload_to: where the metadata goes beyond the endpoint's local_mdata_path (a folder, a Globus
            collection, a Globus Search index).
        stage: all stages, only crawl+group, or only extraction from the last crawl's spool.
        dirs: overrides the block's dirs for this run (deployments: one block, several trees).
        grouper: overrides the block's grouper for this run.
        compute_settings: GlobusComputeSettings (or its block name) for executor 'globus-compute' (docs/compute.md).

    XtractClient's runs carry tags: ``flush-queue`` (the crawl also feeds its flush queue) and
    ``crawl:<id>`` (stage 'xtract' extracts that crawl's own spools, whatever crawled since).
    """
    started = time.perf_counter()
    options = extraction or ExtractionOptions()
    dest = offload_to or OffloadOptions()
    ep = resolve_endpoint(endpoint, dirs=dirs, grouper=grouper)
    settings = load_compute_settings(compute_settings)
    needs = RunNeeds(extract=stage != "crawl", executor=options.executor, workers=options.workers,
                     compute_settings=settings)
    index_id = dest.search_index_id or ep.search_index_id
    validate_endpoint(ep, needs, dest_endpoint_id=dest.dest_endpoint_id, search_index_id=index_id)
    out = MetadataDir.of(ep.local_mdata_path)
    check_metadata_dir(out)
    name = ep.slug()
    run_id = str(flow_run.id or uuid.uuid4().hex)
    state = out.endpoint(name)  # this endpoint's spools: others may share OUT
    tags = set(flow_run.tags or [])
    flush_queue, wanted = FLUSH_QUEUE_TAG in tags, crawl_of_tags(tags)
    with ExitStack() as held:
        try:
            held.enter_context(state_lock(out.lock, flow_run=run_id, timeout_s=options.lock_timeout_s))
        except StateLocked as exc:  # a state, not a traceback: the message is the whole story
            return Failed(message=str(exc))
        pool = plan_pool(ep, options, out, settings) if stage != "crawl" else None
        if pool is not None and pool.kind == "local" and pool.staging is None:
            start_worker_server()  # workers' imports overlap the crawl
        summary = RunSummary(endpoint=name, metadata_dir=out.root, flow_run_id=run_id, stage=stage)

        clock = StageClock()
        # each crawl has its own spools; an extraction reads the crawl it was started for, else the latest
        cid = crawl_to_extract(state, wanted) if stage == "xtract" else run_id
        if flush_queue and stage != "xtract":
            prune_queues(state.root, keep=1)  # the previous crawl's queue stays for clients still flushing it
        with clock("crawl"):
            crawled = recorded_crawl(state.crawl_spool(cid)) if stage == "xtract" else crawl(
                ep, state.crawl_spool(cid), endpoint_name=name,
                queue_path=state.flush_queue(run_id) if flush_queue else None)
        with clock("group"):
            grouped = group(state.crawl_spool(cid), state.groups_spool(cid), ep.grouper, endpoint_name=name)
        summary.files_crawled, summary.bytes_crawled = crawled.files, crawled.bytes
        summary.dirs_failed, summary.groups = crawled.dirs_failed, grouped.groups
        summary.files_excluded = getattr(crawled, "excluded", 0)
        if stage != "xtract":
            record_crawl(state, run_id, requested_at())
            prune_crawls(state, keep=2)
            publish_crawl_status(name, run_id, crawled, grouped.groups)
        if pool is None:
            return finished(name, summary)

        register_containers(grouped.by_extractor, pool.kind, endpoint_name=name, compute=pool.compute,
                            settings=settings)
        import_in_background("flows.report.publish")  # pandas' import overlaps the extraction
        with clock("xtract"):
            counters = xtract(state.groups_spool(cid), out.root, run_id, pool, total_groups=grouped.groups,
                              endpoint_name=name, batch_size=options.batch_size, limit_s=options.time_limit_s,
                              retry_failed=options.retry_failed, follow_symlinks=ep.follow_symlinks)
        with clock("sink"):
            sunk = sink(out.root, run_id, endpoint_name=name)
        with clock("search_index"):
            update_search_index(out.root, endpoint_name=name)
        with clock("report"):
            from flows.report.publish import publish_run_report  # imported above, in a thread

            summary.report = publish_run_report(name, out.root)  # before any offload moves OUT

        summary.extracted, summary.failed = sunk.counts.get("ok", 0), sunk.counts.get("error", 0)
        summary.unknown, summary.skipped = sunk.counts.get("unknown", 0), sunk.counts.get("skipped", 0)
        summary.xtract_counters = counters_view(counters)
        if index_id:
            summary.search = search_ingest(ep, index_id, out.root, visible_to=dest.search_visible_to,
                                           endpoint_name=name)
        if dest.dest_path is not None:
            summary.offload_path = offload({name: out.root}, dest.dest_path, delete_source=dest.delete_source,
                                           dest_endpoint_id=dest.dest_endpoint_id, endpoint=ep,
                                           timeout_s=options.transfer_timeout_s)["path"]
        summary.seconds = round(time.perf_counter() - started, 3)
        summary.stage_seconds = clock.seconds
        publish_summary(name, summary, sunk.by_extractor)
        return finished(name, summary)


def finished(name: str, summary: RunSummary) -> State:
    """The run's Completed state, after telling in-process observers its summary and checking the API.

    The summary goes to observers first because the engine's final state proposal is where a
    lost API shows: the CLI can then still print what was done. ``settle_status`` makes that
    proposal fail within seconds when the API is gone (instead of a minute of client retries).
    """
    get_run_logger().info(summary.message())
    notify("run", name, "end", summary=summary.as_dict())
    settle_status(name)
    return Completed(message=summary.message(), data=summary.as_dict())


def requested_at() -> float:
    """When this run was asked for (its scheduled start): orders crawls of one endpoint by request, not by lock."""
    when = flow_run.scheduled_start_time
    return when.timestamp() if when is not None else time.time()


def counters_view(counters: dict[str, Any]) -> dict[str, Any]:
    """The xtract-sdk counters as the seed's status call showed them."""
    return {k: counters[k] for k in ("cumu_orch_enter", "cumu_pulled", "cumu_scheduled", "cumu_to_schedule",
                                     "flagged_unknown")} | {
        "fx": {"pending": counters["fx_pending"], "success": counters["fx_success"], "failed": counters["fx_failed"]}}


# A served deployment (flow.serve / `xtract serve`) runs this function cloudpickled by value, with only the
# globals its body uses, so string annotations (from __future__) would no longer resolve and every served run
# would fail parameter validation. Resolved once here, they travel with the function.
xtract_endpoint.fn.__annotations__ = get_type_hints(xtract_endpoint.fn, include_extras=True)
