"""``xtract status [FLOW_RUN_ID]``: state, stages, progress and counters of a run, from the Prefect API.

Everything comes from the API (flow-run state, task runs, artifacts), so it
answers the same from another shell while a run goes on, or a day later. Without
an id it shows the newest ``xtract-endpoint`` run.
"""

from __future__ import annotations

import argparse
import json
import re
import uuid
from datetime import UTC, datetime
from typing import Any

from flows.cli import UsageError
from tasks.artifacts import CHART, CRAWL_STATUS, REPORT, XTRACT_COUNTERS, kind_of

NAME = "status"
HELP = "state, progress and counters of a run (the newest xtract-endpoint run when no id is given)"
FLOW_NAME = "xtract-endpoint"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("flow_run_id", nargs="?", metavar="FLOW_RUN_ID", help="a flow run id (printed by `xtract run`)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")


def _iso(ts: datetime | None) -> str | None:
    return ts.astimezone(UTC).isoformat(timespec="seconds") if ts else None


def _table(data: Any) -> list[dict[str, Any]]:
    rows = json.loads(data) if isinstance(data, str) else data
    return rows if isinstance(rows, list) else []


def _duration(start: datetime | None, end: datetime | None, fallback: float | None = None) -> float | None:
    if start is None:
        return fallback
    return ((end or datetime.now(UTC)) - start).total_seconds()


def read_status(flow_run_id: str | None) -> dict[str, Any]:
    """The run's state, stages, progress, crawl row, counters and report link, as plain data."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterId,
    )
    from prefect.client.schemas.sorting import ArtifactSort, FlowRunSort, TaskRunSort

    with get_client(sync_client=True) as client:
        if flow_run_id:
            runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])),
                                         limit=1)
            if not runs:
                raise UsageError(f"no flow run {flow_run_id} on this Prefect API")
        else:
            runs = client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=[FLOW_NAME])),
                                         sort=FlowRunSort.EXPECTED_START_TIME_DESC, limit=1)
            if not runs:
                raise UsageError(f"no {FLOW_NAME} flow runs on this Prefect API yet: start one with `xtract run`")
        run = runs[0]
        tasks = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run.id])),
                                      sort=TaskRunSort.EXPECTED_START_TIME_ASC)
        arts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run.id])),
            sort=ArtifactSort.CREATED_DESC,
        )
    state = run.state
    out: dict[str, Any] = {
        "flow_run_id": str(run.id), "name": run.name,
        "state": state.name if state else None, "state_type": state.type.value if state else None,
        "message": state.message if state else None, "final": bool(state and state.is_final()),
        "started": _iso(run.start_time), "ended": _iso(run.end_time),
        "seconds": _duration(run.start_time, run.end_time, run.total_run_time.total_seconds()),
        "stages": [{"name": t.name.split("-", 1)[0], "task_run": t.name, "state": t.state.name if t.state else None,
                    "seconds": _duration(t.start_time, t.end_time)} for t in tasks],
        "progress": None, "crawl": None, "counters": None, "report": None, "charts": [],
    }
    for art in arts:  # newest first: the first of each kind wins
        key, kind = art.key or "", kind_of(art.key)
        if art.type == "progress" and out["progress"] is None:
            out["progress"] = {"percent": float(art.data or 0), "description": art.description}
        elif art.type == "table" and kind == CRAWL_STATUS and out["crawl"] is None:
            out["crawl"] = (_table(art.data) or [None])[0]
        elif art.type == "table" and kind == XTRACT_COUNTERS and out["counters"] is None:
            out["counters"] = {str(r["counter"]): r["value"] for r in _table(art.data) if "counter" in r}
        elif kind == REPORT and out["report"] is None:  # a link artifact, stored as [text](url)
            link = re.search(r"\]\((.+)\)\s*$", str(art.data or ""))
            out["report"] = link.group(1) if link else art.data
        elif art.type == "image" and kind == CHART:
            out["charts"].append(key)
    return out


def format_status(s: dict[str, Any]) -> list[str]:
    """The status as aligned lines for people."""
    from tasks.units import human_bytes, human_count, human_duration

    lines = [f"flow run  {s['name']}  ({s['flow_run_id']})",
             f"state     {s['state']}" + (f": {s['message']}" if s.get("message") else ""),
             f"started   {s['started'] or 'not yet'}" + (f"  ended {s['ended']}" if s["ended"] else "")
             + f"  ({human_duration(s['seconds'])}{'' if s['final'] else ' so far'})"]
    if s["stages"]:
        done = {"Completed": "✓", "Failed": "✗", "Crashed": "✗", "Running": "…"}
        lines.append("stages    " + " · ".join(
            f"{t['name']} {done.get(t['state'] or '', t['state'] or '?')} {human_duration(t['seconds'])}"
            for t in s["stages"]))
    if s["progress"] is not None:
        desc = s["progress"]["description"] or ""
        lines.append(f"progress  {s['progress']['percent']:.0f}%" + (f"  {desc}" if desc else ""))
    if s["crawl"]:
        c = s["crawl"]
        lines.append(f"crawl     {human_count(c.get('files_crawled', 0))} files · "
                     f"{human_bytes(c.get('bytes_crawled', 0))} · {human_count(c.get('groups_crawled', 0))} groups"
                     f" · {c.get('message', '')}")
    if s["counters"]:
        c = s["counters"]
        lines.append("extract   " + " · ".join(f"{label} {human_count(c.get(k, 0))}" for k, label in (
            ("fx.success", "groups ok"), ("fx.failed", "groups failed"), ("fx.pending", "in flight"),
            ("groups_skipped", "done earlier"), ("cumu_to_schedule", "to schedule"))))
        lines.append("files     " + " · ".join(f"{label} {human_count(c.get(k, 0))}" for k, label in (
            ("files_ok", "extracted"), ("files_error", "failed"), ("files_unknown", "unknown type"),
            ("files_skipped", "done earlier"))))
    if s["report"]:
        lines.append(f"report    {s['report']}")
    return lines


def run(args: argparse.Namespace) -> int:
    if args.flow_run_id:
        try:
            uuid.UUID(args.flow_run_id)
        except ValueError:
            raise UsageError(f"not a flow run id (a UUID): {args.flow_run_id!r}") from None
    status = read_status(args.flow_run_id)
    if args.json:
        print(json.dumps(status))
    else:
        print("\n".join(format_status(status)))
    return 0
