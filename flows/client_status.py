"""The seed's status dicts, read from the Prefect API only (flow-run state + table artifacts).

Nothing here looks at the caller's memory, so a second process — or a shell a day
later — gets the same answer for a crawl id as the process that started the crawl.
"""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    FlowRunFilter,
    FlowRunFilterId,
    FlowRunFilterTags,
)
from prefect.client.schemas.objects import FlowRun
from prefect.client.schemas.sorting import ArtifactSort, FlowRunSort

from tasks.artifacts import CRAWL_STATUS, XTRACT_COUNTERS, kind_of
from xtract_blocks.errors import ClientError

CLIENT_TAG = "xtract-client"
CRAWL_COUNTERS = ("bytes_crawled", "files_crawled", "groups_crawled")
SEED_COUNTERS = ("cumu_orch_enter", "cumu_pulled", "cumu_scheduled", "cumu_to_schedule", "flagged_unknown")


#: The facade's errors: every failure is an exception with a message, never a silent None.
XtractClientError = ClientError


class UnknownCrawlError(XtractClientError, KeyError):
    """No flow run exists with that crawl id on this Prefect API."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


def as_uuid(crawl_id: str | UUID) -> UUID:
    try:
        return crawl_id if isinstance(crawl_id, UUID) else UUID(str(crawl_id))
    except ValueError:
        raise UnknownCrawlError(f"{crawl_id!r} is not a crawl id (a Prefect flow run id)") from None


#: A crawl run with this tag feeds its flush queue (XtractClient.flush_crawl_metadata).
FLUSH_QUEUE_TAG = "flush-queue"


def crawl_tag(crawl_id: str | UUID) -> str:
    return f"crawl:{crawl_id}"


def crawl_of_tags(tags: list[str] | set[str]) -> str | None:
    """The crawl id an extraction run was started for (its ``crawl:<id>`` tag), if any."""
    return next((t.split(":", 1)[1] for t in tags if t.startswith("crawl:")), None)


def read_runs(client: SyncPrefectClient, ids: list[UUID]) -> dict[UUID, FlowRun]:
    """Flow runs by id in one request; an unknown id raises UnknownCrawlError naming it."""
    runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=ids)), limit=len(ids))
    found = {r.id: r for r in runs}
    missing = [str(i) for i in ids if i not in found]
    if missing:
        raise UnknownCrawlError(f"no flow run with crawl id {missing[0]} on this Prefect API"
                                + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
    return found


def latest_tables(client: SyncPrefectClient, run_ids: list[UUID], kind: str) -> dict[UUID, list[dict[str, Any]]]:
    """The newest table artifact of one kind (tasks.artifacts), per flow run."""
    if not run_ids:
        return {}
    arts = client.read_artifacts(
        artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=run_ids)),
        sort=ArtifactSort.CREATED_DESC,
    )
    out: dict[UUID, list[dict[str, Any]]] = {}
    for art in arts:
        if art.flow_run_id in out or kind_of(art.key) != kind:
            continue
        data = json.loads(art.data) if isinstance(art.data, str) else art.data
        if isinstance(data, list):
            out[art.flow_run_id] = data
    return out


def _state_message(run: FlowRun) -> str:
    state = run.state
    return (state.message or state.name) if state is not None else "no state"


def crawl_statuses(client: SyncPrefectClient, crawl_ids: list[str | UUID]) -> list[dict[str, Any]]:
    """One seed crawl-status dict per id: crawl_id, status, message, data{bytes,files,groups crawled}."""
    ids = [as_uuid(c) for c in crawl_ids]
    runs = read_runs(client, ids)
    tables = latest_tables(client, ids, CRAWL_STATUS)
    payload = []
    for cid in ids:
        run, rows = runs[cid], tables.get(cid)
        row = rows[0] if rows else None
        data = {k: int(row.get(k, 0)) for k in CRAWL_COUNTERS} if row else {k: 0 for k in CRAWL_COUNTERS}
        state = run.state
        if row is not None:  # the crawl published its result: done, whatever extraction does after it
            status, message = "complete", str(row.get("message", "OK"))
        elif state is not None and state.is_final():
            status = "complete" if state.is_completed() else "failed"
            message = "OK" if state.is_completed() else f"{state.name}: {_state_message(run)}"
        elif state is not None and state.is_running():
            status, message = "crawling", "OK"
        else:
            status, message = "pending", "OK"
        payload.append({"crawl_id": str(cid), "status": status, "message": message, "data": data})
    return payload


def xtract_run_for(client: SyncPrefectClient, crawl_id: UUID) -> FlowRun | None:
    """The newest extraction run started for a crawl (tagged ``crawl:<id>``), or None."""
    runs = client.read_flow_runs(
        flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=[CLIENT_TAG, crawl_tag(crawl_id), "stage:xtract"])),
        sort=FlowRunSort.EXPECTED_START_TIME_DESC, limit=1,
    )
    return runs[0] if runs else None


def seed_counters(rows: list[dict[str, Any]] | None) -> dict[str, Any]:
    """The counter table artifact back into the seed's nested dict (zeros before the first table)."""
    values = {str(r.get("counter")): int(r.get("value") or 0) for r in rows or []}
    counters: dict[str, Any] = {k: values.get(k, 0) for k in SEED_COUNTERS}
    counters["fx"] = {k: values.get(f"fx.{k}", 0) for k in ("failed", "pending", "success")}
    return counters


def xtract_statuses(client: SyncPrefectClient, crawl_ids: list[str | UUID]) -> list[dict[str, Any]]:
    """One dict per crawl: crawl_id, xtract_run_id, xtract_status, message, xtract_counters (the seed's names)."""
    ids = [as_uuid(c) for c in crawl_ids]
    read_runs(client, ids)  # unknown crawl ids fail loudly
    xruns: dict[UUID, FlowRun] = {}
    for cid in ids:
        xrun = xtract_run_for(client, cid)
        if xrun is None:
            raise XtractClientError(f"no extraction was started for crawl {cid}: call xtract() first")
        xruns[cid] = xrun
    tables = latest_tables(client, [r.id for r in xruns.values()], XTRACT_COUNTERS)
    payload = []
    for cid in ids:
        xrun = xruns[cid]
        state = xrun.state
        if state is not None and state.is_completed():
            status, message = "complete", _state_message(xrun)
        elif state is not None and state.is_final():
            status, message = "failed", f"{state.name}: {_state_message(xrun)}"
        elif state is not None and state.is_running():
            status, message = "extracting", "OK"
        else:
            status, message = "pending", "OK"
        payload.append({"crawl_id": str(cid), "xtract_run_id": str(xrun.id), "xtract_status": status,
                        "message": message, "xtract_counters": seed_counters(tables.get(xrun.id))})
    return payload
