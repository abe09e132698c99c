"""One endpoint over Prefect's own workers: crawl once, run N shards as flow runs on a work pool, merge.

Users outgrow one machine: ``xtract run PATH -o OUT --shards N --work-pool POOL`` (or this
flow from Python or the UI) crawls the endpoint, splits the crawl into N subtree shards
balanced by its own counts (tasks/shards.py), and runs each shard as a flow run of the
``xtract-endpoint`` flow's shard deployment on POOL, which any number of
``prefect worker start --pool POOL`` processes, on any hosts that see the data and OUT,
pick up. The deployment is created or updated here (entrypoint by module path, so a
worker needs only the package installed). A shard that fails, crashes, or stops showing
progress (its worker was killed) is run again, and resumes from its own journal; when
all are done their metadata is merged into OUT: one index, every file once, partitioned
by shard. In the UI the shard runs are children of this run, and one progress artifact
covers them all.
"""

from __future__ import annotations

import os
import time
import uuid
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Annotated, Any
from uuid import UUID

from prefect import flow, get_run_logger
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.runtime import flow_run
from prefect.states import Completed, Failed

from flows.client_forms import BlockSelector
from flows.endpoint_flow import StageClock, check_metadata_dir, resolve_endpoint, xtract_endpoint
from tasks.artifacts import PROGRESS, artifact_key
from tasks.crawl import crawl
from tasks.group import group_spool
from tasks.habitats import RunNeeds, validate_endpoint
from tasks.offload import OffloadOptions, offload
from tasks.pools.options import ExtractionOptions
from tasks.shards import Shard, index_counts, merge, split_crawl
from tasks.status import publish_crawl_status
from tasks.store.endpoint_crawls import record_crawl
from tasks.store.layout import MetadataDir
from tasks.store.state_lock import StateLocked, state_lock
from xtract_blocks import XtractEndpoint
from xtract_blocks.endpoint import Grouper
from xtract_blocks.errors import ConfigurationError

#: The deployment of the per-endpoint flow that shard runs are created from.
SHARD_DEPLOYMENT = "xtract-shard"
SHARD_TAG = "xtract-shard"
POLL_S = 2.0


def ensure_shard_deployment(work_pool: str, name: str = SHARD_DEPLOYMENT) -> str:
    """Create (or update) the shard deployment on ``work_pool``, creating a process pool when there is none."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.deployments.runner import EntrypointType
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            client.read_work_pool(work_pool)
        except ObjectNotFound:
            client.create_work_pool(WorkPoolCreate(name=work_pool, type="process"))
    deployment = xtract_endpoint.to_deployment(name=name, entrypoint_type=EntrypointType.MODULE_PATH,
                                               tags=[SHARD_TAG], description="one shard of a sharded xtract run")
    deployment.apply(work_pool_name=work_pool)
    return f"{xtract_endpoint.name}/{name}"


def endpoint_parameter(ep: XtractEndpoint) -> dict[str, Any]:
    """The shard's endpoint as field values; sub-blocks with secrets travel as references to saved blocks."""
    from pydantic_core import to_jsonable_python

    param: dict[str, Any] = {}
    for key in type(ep).model_fields:
        value = getattr(ep, key)
        if hasattr(value, "_block_document_id"):  # a block (credentials, http, filesystem)
            block_id = getattr(value, "_block_document_id", None)
            if block_id is None:
                raise ConfigurationError(f"XtractEndpoint.{key}: save it as a block before a sharded run, so "
                                         "its secrets travel to the shard runs as a reference, never as values")
            param[key] = {"$ref": {"block_document_id": str(block_id)}}
        else:
            param[key] = to_jsonable_python(value)
    return param


@dataclass
class ShardRun:
    shard: Shard
    endpoint: dict[str, Any]
    attempts: int = 0
    run_id: UUID | None = None
    submitted_at: float = 0.0
    state: str = "PENDING"
    message: str = ""
    history: list[str] = field(default_factory=list)


def last_activity(metadata_dir: str) -> float:
    """When a shard last showed progress: its journal (and WAL) commit as batches finish and its groups directory
    gains files. A few stats, not a walk of a tree that may hold millions of documents."""
    out = MetadataDir(metadata_dir)
    newest = 0.0
    for path in (out.journal, f"{out.journal}-wal", out.groups, out.state):
        try:
            newest = max(newest, os.stat(path).st_mtime)
        except OSError:
            pass
    return newest


def run_shards(runs: list[ShardRun], deployment: str, parameters: dict[str, Any], *, work_pool: str, attempts: int,
               stall_timeout_s: float, progress_id: UUID | None, total_files: int) -> None:
    """Submit every shard and wait; a failed, crashed or stalled shard is submitted again (up to ``attempts``)."""
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment
    from prefect.states import Crashed

    logger = get_run_logger()

    def submit(r: ShardRun) -> None:
        r.attempts += 1
        fr = run_deployment(deployment, parameters={**parameters, "endpoint": r.endpoint}, timeout=0,
                            as_subflow=True, tags=[SHARD_TAG, f"shard:{r.shard.number}"])
        r.run_id, r.submitted_at, r.state = fr.id, time.time(), "SCHEDULED"
        logger.info("shard %d (%d files): flow run %s, attempt %d", r.shard.number, r.shard.files, fr.id, r.attempts)

    def pool_has_workers(client: Any) -> bool:
        try:
            return any(w.status.value == "ONLINE" for w in client.read_workers_for_work_pool(work_pool))
        except Exception:  # noqa: BLE001 - unknown: assume the user knows
            return True

    warned: dict[int, bool] = {}
    for r in runs:
        submit(r)
    with get_client(sync_client=True) as client:
        while any(r.state not in ("COMPLETED", "FAILED") for r in runs):
            time.sleep(POLL_S)
            for r in runs:
                if r.state in ("COMPLETED", "FAILED") or r.run_id is None:
                    continue
                fr = client.read_flow_run(r.run_id)
                st = fr.state
                r.state = st.type.value if st is not None else "PENDING"
                r.message = (st.message or "") if st is not None else ""
                quiet_s = time.time() - max(r.submitted_at, last_activity(r.shard.metadata_dir))
                if r.state == "SCHEDULED":  # queued: normal while the pool's workers are busy with other shards
                    if quiet_s > stall_timeout_s and not warned.get(r.shard.number) and not pool_has_workers(client):
                        logger.warning("no worker of work pool %s is online: start `prefect worker start --pool "
                                       "%s` on a host that sees the data and the metadata directory", work_pool,
                                       work_pool)
                        warned[r.shard.number] = True
                    continue
                if r.state in ("RUNNING", "PENDING") and quiet_s > stall_timeout_s:
                    # its worker (and the run's process) went away: the run will never report again
                    r.message = f"no progress for {stall_timeout_s:.0f}s (worker lost?)"
                    client.set_flow_run_state(r.run_id, Crashed(message=r.message), force=True)
                    r.state = "CRASHED"
                if r.state in ("CRASHED", "FAILED", "CANCELLED", "CANCELLING"):
                    r.history.append(f"{r.run_id}: {r.state} {r.message}")
                    if r.attempts < attempts:
                        logger.warning("shard %d run %s ended %s (%s): running it again", r.shard.number, r.run_id,
                                       r.state, r.message)
                        submit(r)
                    else:
                        r.state = "FAILED"
            if progress_id is not None:
                done = sum(r.shard.files for r in runs if r.state == "COMPLETED")
                try:
                    update_progress_artifact(progress_id, 100.0 * done / max(1, total_files))
                except Exception:  # noqa: BLE001 - the UI's view, never the run's
                    pass


def plan_shards(ep: XtractEndpoint, out: MetadataDir, crawl_spool: str, shards: int, *,
                crawl_id: str) -> list[ShardRun]:
    """Each shard's metadata directory, seeded with its slice of the crawl (recorded as its latest crawl,
    grouped), so its run needs only stage 'xtract'. Shards the directories did not reach are left out."""
    shard_eps = [ep.model_copy(update={"local_mdata_path": out.shard(k).root}) for k in range(shards)]
    states = [MetadataDir(e.local_mdata_path).endpoint(e.slug()) for e in shard_eps]
    for st in states:
        os.makedirs(st.crawl_dir(crawl_id), exist_ok=True)
    sizes = split_crawl(crawl_spool, [st.crawl_spool(crawl_id) for st in states])
    plan = []
    for k, (shard_ep, st, (files, nbytes)) in enumerate(zip(shard_eps, states, sizes, strict=True)):
        if not files:
            continue
        group_spool(st.crawl_spool(crawl_id), st.groups_spool(crawl_id), ep.grouper)
        record_crawl(st, crawl_id, time.time())
        plan.append(ShardRun(Shard(k, shard_ep.local_mdata_path, files, nbytes), endpoint_parameter(shard_ep)))
    return plan


@flow(name="xtract-sharded", log_prints=True)
def xtract_sharded(
    endpoint: Annotated[XtractEndpoint, BlockSelector()] | str,
    shards: int = 2,
    work_pool: str = "xtract-process",
    extraction: ExtractionOptions | None = None,
    offload_to: OffloadOptions | None = None,
    dirs: list[str] | None = None,
    grouper: Grouper | None = None,
    shard_attempts: int = 3,
    stall_timeout_s: float = 600.0,
) -> Any:
    """Crawl one endpoint, extract it as ``shards`` flow runs on a work pool's workers, merge into one OUT.

    Args:
        endpoint: an XtractEndpoint block, or the name of a saved one.
        shards: how many flow runs share the endpoint (subtrees balanced by the crawl's file counts).
        work_pool: the work pool whose workers run the shards (created as a process pool when missing).
        extraction: where and how each shard extracts (its workers, batch size, time limit, ...).
        offload_to: where the merged metadata goes beyond local_mdata_path.
        dirs: overrides the block's dirs for this run.
        grouper: overrides the block's grouper for this run.
        shard_attempts: how many times a shard runs before the run gives up on it.
        stall_timeout_s: a running shard that writes nothing for this long is taken as lost (its worker died)
            and run again; a shard still queued that long with no worker online is warned about.
    """
    started = time.perf_counter()
    logger = get_run_logger()
    if shards < 1:
        raise ConfigurationError(f"shards must be at least 1, not {shards}")
    options = extraction or ExtractionOptions()
    dest = offload_to or OffloadOptions()
    ep = resolve_endpoint(endpoint, dirs=dirs, grouper=grouper)
    validate_endpoint(ep, RunNeeds(executor=options.executor, workers=options.workers),
                      dest_endpoint_id=dest.dest_endpoint_id)
    out = MetadataDir.of(ep.local_mdata_path)
    check_metadata_dir(out)
    name = ep.slug()
    run_id = str(flow_run.id or uuid.uuid4().hex)
    state = out.endpoint(name)
    with ExitStack() as held:
        try:  # the parent owns OUT; each shard writes only its own metadata directory inside OUT/.xtract
            held.enter_context(state_lock(out.lock, flow_run=run_id, timeout_s=options.lock_timeout_s))
        except StateLocked as exc:
            return Failed(message=str(exc))
        clock = StageClock()
        with clock("crawl"):
            crawled = crawl(ep, state.crawl_spool(run_id), endpoint_name=name)
        publish_crawl_status(name, run_id, crawled, crawled.files)
        plan = plan_shards(ep, out, state.crawl_spool(run_id), shards, crawl_id=run_id)
        logger.info("%d files in %d shards: %s", crawled.files, len(plan), [r.shard.files for r in plan])
        deployment = ensure_shard_deployment(work_pool)
        progress_id = create_progress_artifact(0.0, key=artifact_key(name, PROGRESS),
                                               description=f"shards of {name} completed, by files")
        parameters = {"stage": "xtract", "extraction": options.model_dump(mode="json", exclude_defaults=True)}
        with clock("shards"):
            run_shards(plan, deployment, parameters, work_pool=work_pool, attempts=shard_attempts,
                       stall_timeout_s=stall_timeout_s, progress_id=progress_id, total_files=crawled.files)
        failed = [r for r in plan if r.state != "COMPLETED"]
        if failed:
            return Failed(message="; ".join(f"shard {r.shard.number} failed after {r.attempts} attempt(s): "
                                            f"{r.message}" for r in failed))
        with clock("merge"):
            merged = merge(out.root, [r.shard for r in plan], endpoint_name=name)
    counts = index_counts(out)
    summary: dict[str, Any] = {
        "endpoint": name, "metadata_dir": out.root, "flow_run_id": run_id, "shards": len(plan),
        "shard_runs": {r.shard.part: str(r.run_id) for r in plan},
        "shard_attempts": {r.shard.part: r.attempts for r in plan},
        "files_crawled": crawled.files, "bytes_crawled": crawled.bytes, "dirs_failed": crawled.dirs_failed,
        "groups": merged["groups"], "extracted": counts.get("ok", 0), "failed": counts.get("error", 0),
        "unknown": counts.get("unknown", 0), "skipped": counts.get("skipped", 0),
    }
    if dest.dest_path is not None:
        summary["offload_path"] = offload({name: out.root}, dest.dest_path, delete_source=dest.delete_source,
                                          dest_endpoint_id=dest.dest_endpoint_id, endpoint=ep,
                                          timeout_s=options.transfer_timeout_s)["path"]
    summary["seconds"] = round(time.perf_counter() - started, 3)
    summary["stage_seconds"] = clock.seconds
    message = (f"{summary['files_crawled']} files in {len(plan)} shards: {summary['extracted']} extracted, "
               f"{summary['failed']} failed, {summary['unknown']} unknown, {summary['skipped']} skipped")
    logger.info(message)
    return Completed(message=message, data=summary)
