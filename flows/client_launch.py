"""Start an ``xtract-endpoint`` flow run without waiting for it: create the run, then run it detached.

Why this and not ``run_deployment(timeout=0)``: a deployment needs a runner or a
worker already polling, which a ported xtract-sdk script does not have. Here the
flow run is created through the Prefect API first (so its id — the crawl id — exists
before ``crawl()`` returns), then a detached Python process executes exactly that
run with Prefect's own engine (``run_flow(flow, flow_run=...)``, as a worker does)
and reports to the same API. Nothing but the Prefect API links the caller and the
run, so any process can ask about it by id.

Usage of the runner side: ``python -m flows.client_launch FLOW_RUN_ID [--after CRAWL_RUN_ID]``;
``--after`` makes an extraction run wait for its crawl, so ``xtract()`` returns at once too.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from typing import Any
from uuid import UUID

import xtract_blocks._defaults  # noqa: F401  (offline Prefect settings before prefect is imported)
from flows.endpoint_flow import xtract_endpoint  # imported up front: crawl() must not pay for it
from xtract_blocks.errors import ClientError

#: how often a waiting extraction run polls its crawl run.
POLL_S = 1.0
_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class LaunchError(ClientError):
    """The flow run could not be created or its process could not be started."""


def create_endpoint_run(parameters: dict[str, Any], *, tags: list[str]) -> UUID:
    """Create a Pending ``xtract-endpoint`` flow run with JSON parameters; returns its id."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        run = client.create_flow_run(xtract_endpoint, parameters=parameters, tags=tags)
    return run.id


def child_env() -> dict[str, str]:
    """The caller's environment plus its Prefect API URL, so the child reports to the same server."""
    from prefect.settings import PREFECT_API_KEY, PREFECT_API_URL

    env = dict(os.environ)
    url = PREFECT_API_URL.value()
    if url:
        env["PREFECT_API_URL"] = url
    key = PREFECT_API_KEY.value()
    if key:
        env["PREFECT_API_KEY"] = key.get_secret_value() if hasattr(key, "get_secret_value") else str(key)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (_REPO_ROOT, env.get("PYTHONPATH", "")) if p)
    return env


def spawn_runner(flow_run_id: UUID, *, log_path: str, after: UUID | None = None) -> subprocess.Popen[bytes]:
    """Start the detached process that executes ``flow_run_id``; its output goes to ``log_path``."""
    cmd = [sys.executable, "-m", "flows.client_launch", str(flow_run_id)]
    if after is not None:
        cmd += ["--after", str(after)]
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    try:
        with open(log_path, "ab") as log:
            return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    env=child_env(), cwd=_REPO_ROOT, start_new_session=True)
    except OSError as exc:
        raise LaunchError(f"could not start the runner process for flow run {flow_run_id}: {exc}") from None


def _wait_for(client: Any, run_id: UUID) -> Any:
    while True:
        run = client.read_flow_run(run_id)
        if run.state is not None and run.state.is_final():
            return run
        time.sleep(POLL_S)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flows.client_launch")
    parser.add_argument("flow_run_id", type=UUID)
    parser.add_argument("--after", type=UUID, default=None, help="run only once this flow run completed")
    args = parser.parse_args(argv)

    from prefect.client.orchestration import get_client
    from prefect.flow_engine import run_flow
    from prefect.states import Failed

    with get_client(sync_client=True) as client:
        if args.after is not None:
            before = _wait_for(client, args.after)
            if not before.state.is_completed():
                message = f"crawl {args.after} ended {before.state.name}: {before.state.message}"
                client.set_flow_run_state(args.flow_run_id, Failed(message=message), force=True)
                print(message, file=sys.stderr)
                return 1
        flow_run = client.read_flow_run(args.flow_run_id)
    state = run_flow(xtract_endpoint, flow_run=flow_run, return_type="state")
    return 0 if state.is_completed() else 1


if __name__ == "__main__":
    sys.exit(main())
