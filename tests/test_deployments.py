"""Deployments, UI-style runs, schedules and ``xtract serve`` against a real ``prefect server start``.

The module starts its own server on a free 127.0.0.1 port (PREFECT_HOME in a temp dir)
and points this process and every subprocess at it; the session's test harness is
left alone. The flow-parameter form is checked without a server.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from uuid import UUID

import pytest

from tests.conftest import REPO
from tests.helpers import check_contract, small_corpus

PREFECT = [sys.executable, "-m", "prefect"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli(env: dict[str, str], *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    out = subprocess.run([*PREFECT, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    tail = (out.stdout + out.stderr)[-4000:]
    assert out.returncode == 0, f"prefect {' '.join(args)} -> {out.returncode}\n{tail}"
    return out


def stop(proc: subprocess.Popen) -> None:
    """Stop a process this module started, with the children it started (its own session)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A real Prefect server; yields the environment subprocesses need to talk to it."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    home = tmp_path_factory.mktemp("prefect-home")
    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    env = dict(os.environ)
    env.pop("PREFECT_API_KEY", None)
    env.update({
        "PREFECT_HOME": str(home), "PREFECT_API_URL": url, "PYTHONPATH": str(REPO),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1", "PREFECT_SERVER_UI_ENABLED": "false",
        "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "2", "PREFECT_RUNNER_POLL_FREQUENCY": "1",
        "PREFECT_WORKER_QUERY_SECONDS": "1",
    })
    log = open(home / "server.log", "wb")
    proc = subprocess.Popen([*PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)], env=env,
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert proc.poll() is None, (home / "server.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "prefect server did not start in 120 s"
            time.sleep(0.5)
        with temporary_settings({PREFECT_API_URL: url}):
            yield env
    finally:
        stop(proc)
        log.close()


def wait_final(flow_run_id: UUID, timeout_s: float = 240) -> object:
    from prefect.client.orchestration import get_client

    deadline = time.monotonic() + timeout_s
    with get_client(sync_client=True) as client:
        while True:
            run = client.read_flow_run(flow_run_id)
            if run.state is not None and run.state.is_final():
                return run
            assert time.monotonic() < deadline, f"flow run still {run.state.name if run.state else None}"
            time.sleep(1)


def artifact_keys(flow_run_id: UUID) -> set[str]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        arts = client.read_artifacts(artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(
            any_=[flow_run_id])))
    return {a.key for a in arts if a.key}


def test_flow_parameters_render_a_usable_form_in_the_ui():
    from prefect.utilities.callables import parameter_schema

    from flows.endpoint_flow import xtract_endpoint

    schema = parameter_schema(xtract_endpoint.fn).model_dump()
    props, defs = schema["properties"], schema["definitions"]
    assert schema["required"] == ["endpoint"]
    # endpoint: a block selector (a $ref to a definition carrying block_type_slug) or a block name
    refs = [o["$ref"].split("/")[-1] for o in props["endpoint"]["anyOf"] if "$ref" in o]
    assert [defs[r]["block_type_slug"] for r in refs] == ["xtract-endpoint"]
    assert {"type": "string"} in props["endpoint"]["anyOf"]
    assert len(props) <= 7, "habitat settings come from the block, executor settings from one options model"
    options = [o["$ref"].split("/")[-1] for o in props["extraction"]["anyOf"] if "$ref" in o]
    assert defs[options[0]]["properties"]["executor"]["enum"] == ["local", "dask", "globus-compute"]
    assert props["stage"]["enum"] == ["all", "crawl", "xtract"] and props["stage"]["default"] == "all"
    grouper = [o for o in props["grouper"]["anyOf"] if "enum" in o]
    assert grouper and grouper[0]["enum"] == ["file_is_group", "directory", "related"]
    assert {"type": "array", "items": {"type": "string"}} in props["dirs"]["anyOf"]
    assert all(p.get("description") for p in props.values()), "every parameter explains itself in the form"
    # what the UI's block selector sends must pass the server's parameter validation (Prefect's preprocessing)
    from prefect.utilities.schema_tools.validation import preprocess_schema, validate

    ref = {"$ref": {"block_document_id": "1ec295b3-97e0-4580-9e95-b50d0f41a2dd"}}
    for params in ({"endpoint": ref}, {"endpoint": "a-block-name", "compute_settings": ref},
                   {"endpoint": {"dirs": ["/data"]}, "grouper": "related"}):
        assert validate(params, preprocess_schema(schema), raise_on_error=False) == [], params


def test_xtract_serve_rejects_bad_options_before_serving(subprocess_env):
    for args, message in ((["--param", "no_such=1"], "--param 'no_such=1'"),
                          (["--cron", "every day"], "not a cron expression")):
        out = subprocess.run([sys.executable, "-m", "flows.cli", "serve", *args], cwd=REPO, env=subprocess_env,
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 2 and message in out.stderr, out.stderr[-2000:]


@pytest.mark.slow
def test_prefect_deploy_all_schedule_and_a_ui_run_picked_up_by_a_worker(server, tmp_path):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterId,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.deployments import run_deployment

    from xtract_blocks import XtractEndpoint

    files = small_corpus(tmp_path / "repo")
    out = tmp_path / "meta"
    block_id = XtractEndpoint(dirs=[str(tmp_path / "repo")], local_mdata_path=str(out)).save("xtract-demo")

    cli(server, "work-pool", "create", "xtract-process", "--type", "process")
    cli(server, "deploy", "--all")  # the root prefect.yaml links to deployments/prefect.yaml

    with get_client(sync_client=True) as client:
        dep = client.read_deployment_by_name("xtract-endpoint/nightly")
        assert dep.parameters["endpoint"] == "xtract-demo" and dep.parameters["grouper"] == "related"
        assert [s.schedule.cron for s in dep.schedules] == ["0 2 * * *"]
        assert dep.work_pool_name == "xtract-process"
        scheduled_filter = FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(
            any_=[StateType.SCHEDULED])))
        deadline = time.monotonic() + 60
        while not (scheduled := client.read_flow_runs(
                flow_run_filter=scheduled_filter,
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[dep.id])))):
            assert time.monotonic() < deadline, "the cron schedule created no scheduled runs"
            time.sleep(1)
    assert all(r.expected_start_time.hour == 2 and r.expected_start_time.minute == 0 for r in scheduled)

    # the UI's "Custom run": the block selector sends a $ref, the form an override
    run = run_deployment("xtract-endpoint/nightly", timeout=0, parameters={
        "endpoint": {"$ref": {"block_document_id": str(block_id)}}, "grouper": "file_is_group"})
    cli(server, "worker", "start", "--pool", "xtract-process", "--run-once", "--limit", "1", timeout=300)
    done = wait_final(run.id)
    assert done.state.is_completed(), done.state.message
    assert f"{len(files)} files in {len(files)} groups" in done.state.message
    assert {"xtract-demo-crawl-status", "xtract-demo-xtract-counters", "xtract-demo-summary"} <= artifact_keys(run.id)
    check_contract(out, expected_files=len(files))


@pytest.mark.slow
def test_xtract_serve_runs_what_prefect_deployment_run_starts(server, tmp_path):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    from xtract_blocks import XtractEndpoint

    files = small_corpus(tmp_path / "repo")
    out = tmp_path / "meta"
    XtractEndpoint(dirs=[str(tmp_path / "repo")], local_mdata_path=str(out)).save("served-ep")
    log = open(tmp_path / "serve.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "flows.cli", "serve", "--name", "served", "--endpoint",
                             "served-ep", "--grouper", "directory", "--workers", "2", "--param",
                             'extraction={"time_limit_s": 60}'], cwd=REPO,
                            env=server, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        with get_client(sync_client=True) as client:
            deadline = time.monotonic() + 120
            while True:
                try:
                    dep = client.read_deployment_by_name("xtract-endpoint/served")
                    break
                except Exception:  # noqa: BLE001 - not registered yet
                    assert proc.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
                    assert time.monotonic() < deadline, "xtract serve registered no deployment"
                    time.sleep(1)
            assert dep.parameters == {"endpoint": "served-ep", "grouper": "directory",
                                      "extraction": {"workers": 2, "time_limit_s": 60}}
            cli(server, "deployment", "run", "xtract-endpoint/served")
            (run,) = client.read_flow_runs(deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[dep.id])))
        done = wait_final(run.id)
        assert done.state.is_completed(), done.state.message + (tmp_path / "serve.log").read_text()[-3000:]
        assert "served-ep-crawl-status" in artifact_keys(run.id)
        idx = check_contract(out, expected_files=len(files))
        assert idx["group_id"].nunique() < len(files)  # the served default grouper=directory applied
    finally:
        stop(proc)
        log.close()
    assert shutil.which("true")  # nothing of serve's left: its session was ended above
