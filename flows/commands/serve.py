"""``xtract serve``: serve the per-endpoint flow as a deployment, for users without a work pool.

``flow.serve`` registers a deployment and runs a long-lived runner in this process
that executes its runs: those started from the UI ("Run" / "Custom run"), by
``prefect deployment run``, by ``run_deployment`` — and by the schedule, if given.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from flows.cli import UsageError, positive_float, positive_int

NAME = "serve"
HELP = "serve the xtract-endpoint flow as a deployment (no work pool needed); runs come from the UI, API or a schedule"
GROUPERS = ("file_is_group", "directory", "related")
EXECUTORS = ("local", "dask", "globus-compute")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--name", default="xtract-serve", help="deployment name (default xtract-serve)")
    p.add_argument("--endpoint", metavar="BLOCK", help="default XtractEndpoint block name for runs")
    p.add_argument("--dirs", nargs="+", metavar="DIR", help="default dirs override")
    p.add_argument("--grouper", choices=GROUPERS, help="default grouper override")
    p.add_argument("--executor", choices=EXECUTORS, help="default executor")
    p.add_argument("--workers", type=positive_int, help="default local worker processes")
    p.add_argument("--param", action="append", default=[], metavar="KEY=JSON",
                   help="any other default parameter, value as JSON (repeatable), "
                   "e.g. extraction='{\"time_limit_s\": 60}'")
    when = p.add_mutually_exclusive_group()
    when.add_argument("--cron", help="schedule, e.g. '0 2 * * *'")
    when.add_argument("--interval", type=positive_float, metavar="SECONDS", help="schedule every SECONDS")
    p.add_argument("--limit", type=positive_int, help="at most this many runs at once")


def parameters_of(args: argparse.Namespace) -> dict[str, Any]:
    """The deployment's default parameters, checked against the flow's parameter names."""
    from flows.endpoint_flow import xtract_endpoint

    params: dict[str, Any] = {k: v for k, v in (("endpoint", args.endpoint), ("dirs", args.dirs),
                                                ("grouper", args.grouper)) if v is not None}
    extraction = {k: v for k, v in (("executor", args.executor), ("workers", args.workers)) if v is not None}
    if extraction:
        params["extraction"] = extraction
    known = set(xtract_endpoint.parameters.properties)
    for item in args.param:
        key, sep, raw = item.partition("=")
        if not sep or key not in known:
            raise UsageError(f"--param {item!r}: expected KEY=JSON with KEY one of {sorted(known)}")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw  # a bare word is a string
        if isinstance(value, dict) and isinstance(params.get(key), dict):
            value = {**params[key], **value}  # --workers and --param extraction=... add up
        params[key] = value
    return params


def run(args: argparse.Namespace) -> int:
    if args.cron:
        from prefect.client.schemas.schedules import CronSchedule

        try:
            CronSchedule(cron=args.cron)
        except ValueError:
            raise UsageError(f"--cron {args.cron!r} is not a cron expression") from None
    params = parameters_of(args)
    from flows.endpoint_flow import xtract_endpoint

    try:
        xtract_endpoint.serve(name=args.name, parameters=params, cron=args.cron, interval=args.interval,
                              limit=args.limit, tags=["xtract"],
                              description="prefect-xtract per-endpoint flow, served by `xtract serve`")
    except KeyboardInterrupt:
        pass
    return 0
