"""Globus Compute path: ComputePool on the unmodified globus_compute_sdk.Executor, against a real endpoint.

The endpoint is a real ``globus-compute-endpoint`` process taking tasks from a real RabbitMQ broker;
only the Globus Compute web service is emulated (``tests/compute_service``, docs/compute.md). These
tests cover the pool and the flow: SDK serializer round trips on the endpoint, payload sizing,
checksum-keyed registration, containers, chunking, lost and hung work, the flow's artifacts. The
SDK/endpoint loop itself is in ``tests/test_compute_endpoint.py``; the stand-in
(``backend="local-standin"``) is only a dry-run backend and has one test here.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import pathlib
import signal
import threading
import time
import uuid

import pytest
from globus_compute_sdk import Executor
from globus_compute_sdk.sdk.batch import Batch as SdkBatch
from globus_compute_sdk.serialize import (
    AllCodeStrategies,
    ComputeSerializer,
    DillCode,
    DillDataBase64,
    JSONData,
    PureSourceDill,
    PureSourceTextInspect,
)
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

from extractors.batch import run_batch
from flows.endpoint_flow import xtract_endpoint
from tasks.pools.base import ComputeOptions, PoolSpec
from tasks.pools.globus_compute.containers import container_uri, user_endpoint_config
from tasks.pools.globus_compute.entry import xtract_remote_batch
from tasks.pools.globus_compute.registration import (
    ComputeConfigError,
    SdkBackend,
    ensure_registered,
    function_checksum,
    load_registry,
    make_backend,
)
from tasks.pools.globus_compute.sizing import fit_payload, make_serializer, payload_bytes
from tasks.pools.options import ExtractionOptions
from tasks.pools.plan import open_pool
from tasks.store.journal import StateStore
from tasks.xtract import ExtractionRun, make_batches
from tests.helpers import check_contract, small_corpus, write_csv
from xtract_blocks import GlobusComputeSettings, XtractEndpoint
from xtract_blocks.errors import PayloadTooLarge


def group_of(path: pathlib.Path, gid: str | None = None) -> dict:
    st = path.stat()
    return {"group_id": gid or uuid.uuid4().hex, "fingerprint": "fp", "endpoint": "test", "extractor": None,
            "files": [{"path": str(path), "size": st.st_size, "mtime": st.st_mtime,
                       "extension": path.suffix.lstrip("."), "mime": None, "extractor": None}]}


def wide_csv(path: pathlib.Path, cols: int = 80, rows: int = 20) -> pathlib.Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [",".join(f"c{i}" for i in range(cols))] + [",".join(str(r * i) for i in range(cols)) for r in range(rows)]
    path.write_text("\n".join(lines) + "\n")
    return path


def big_csv(path: pathlib.Path, rows: int = 400_000) -> pathlib.Path:
    """~34 MB: about 2 s of extraction, long enough for a test to catch its task running."""
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow([f"c{j}" for j in range(12)])
        w.writerows([r * j for j in range(12)] for r in range(rows))
    return path


def sdk_settings(**kw) -> GlobusComputeSettings:
    return GlobusComputeSettings(backend="sdk", registry_block=f"reg-{uuid.uuid4().hex[:12]}", **kw)


def pool_run(loop, out: pathlib.Path, settings, groups, *, limit_s=20.0, grace_s=20.0, workers=2, during=None,
             max_groups=4, max_retries=1):
    """ExtractionRun over a ComputePool whose executor is the unmodified globus_compute_sdk.Executor."""
    spec = PoolSpec(kind="globus-compute", workers=workers, compute=ComputeOptions(
        endpoint_id=loop.endpoint_id, settings=settings, credentials=loop.credentials()))
    pool = open_pool(spec)
    assert type(pool.executor) is Executor  # the SDK's own, nothing in between
    (out / "groups").mkdir(parents=True, exist_ok=True)
    state = StateStore(str(out / ".xtract"))
    try:
        run = ExtractionRun(pool, state, "run-1", str(out), limit_s=limit_s, max_retries=max_retries,
                            grace_s=grace_s, poll_s=0.2)
        side = threading.Thread(target=during, args=(pool,), daemon=True) if during else None
        if side:
            side.start()
        counters = run.run(make_batches(iter(groups), max_groups=max_groups), max_in_flight=2)
        if side:
            side.join(timeout=60)
    finally:
        pool.close()
        state.close()
    docs = {p.stem: json.loads(p.read_text()) for p in (out / "groups").glob("*.json")}
    return counters, docs


def when_running(loop, tasks_before: set[str], act, carrying: str = "big.csv", timeout_s: float = 120.0) -> None:
    """Call ``act()`` once the user endpoint has started executing the task whose arguments hold ``carrying``."""
    give_up = time.monotonic() + timeout_s
    svc, ep = loop.service, loop.endpoint
    while time.monotonic() < give_up:
        mine = [tid for tid, t in list(svc.tasks.items())
                if tid not in tasks_before and t.result is None and carrying in t.payload]
        if mine:
            logs = "".join(ep.uep_logs().values())
            if any(f"{tid}: Preparing to execute task" in logs for tid in mine):
                act()
                return
        time.sleep(0.05)


def test_compute_entry_functions_round_trip_sdk_serializers_on_the_endpoint(compute_loop, tmp_path):
    """On the real endpoint: run_batch survives the SDK's by-reference code strategy (the endpoint has
    ``extractors``), loses its module's names by source, and the registered wrapper survives every code
    strategy; the endpoint's workers cannot import ``tasks`` (nor Prefect)."""
    files = small_corpus(tmp_path / "data")
    groups = [group_of(files["t2"], "t2"), group_of(files["bad"], "bad")]
    client = compute_loop.client()
    with Executor(endpoint_id=compute_loop.endpoint_id, client=client) as ex:
        def call(fn, code, data=None, **kwargs):
            client.fx_serializer = ComputeSerializer(strategy_code=code, strategy_data=data)
            fid = client.register_function(fn)
            return ex.submit_to_registered_function(fid, args=(groups,), kwargs=kwargs).result(timeout=120)

        for data in (JSONData(), DillDataBase64()):  # run_batch by reference: the endpoint has extractors
            res = call(run_batch, DillCode(), data, limit_s=20)
            assert [r["files"][0]["status"] for r in res] == ["ok", "error"]
            assert res[0]["doc"]["metadata"]["tabular"]["rows"] == 10
        # by source, run_batch loses its module's names; that is why the registered entry is a self-contained
        # wrapper that imports inside its body, and it survives every code strategy
        with pytest.raises(Exception, match="NameError"):
            call(run_batch, PureSourceTextInspect(), limit_s=20)
        for code in (PureSourceTextInspect(), PureSourceDill(), AllCodeStrategies()):
            out = call(xtract_remote_batch, code, JSONData(), limit_s=20)
            assert out["remaining"] == [] and [r["group_id"] for r in out["results"]] == ["t2", "bad"]
            assert [r["files"][0]["status"] for r in out["results"]] == ["ok", "error"]
        # by reference, a function of ours needs module `tasks`, which the endpoint does not have
        client.fx_serializer = ComputeSerializer(strategy_code=DillCode())
        with pytest.raises(Exception, match="No module named 'tasks"):
            ex.submit(function_checksum).result(timeout=120)


def test_compute_payload_sizing_matches_sdk_and_splits(tmp_path):
    serde = make_serializer()
    groups = [group_of(write_csv(tmp_path / f"{'d' * 200}{i}.csv"), f"g{i}") for i in range(40)]
    kwargs = {"limit_s": 5.0, "max_result_bytes": 1000}
    sdk = SdkBatch(None, serializer=serde)
    sdk.add(str(uuid.uuid4()), (groups,), kwargs)
    (packed,) = next(iter(sdk.tasks.values()))
    assert payload_bytes(serde, (groups,), kwargs) == len(packed.encode())
    limit = payload_bytes(serde, (groups,), kwargs) // 5
    parts = list(fit_payload(serde, groups, kwargs, limit=limit))
    assert all(isinstance(p, list) for p in parts) and len(parts) >= 5
    assert [g["group_id"] for p in parts for g in p] == [g["group_id"] for g in groups]
    assert all(payload_bytes(serde, (p,), kwargs) <= limit for p in parts)
    (err,) = fit_payload(serde, groups[:1], kwargs, limit=100)
    assert isinstance(err, PayloadTooLarge) and err.group_id == "g0"


def test_compute_container_naming():
    sif = GlobusComputeSettings(container_type="apptainer", container_path="/images/")
    assert container_uri("tabular", sif) == "/images/xtract-tabular.sif"
    assert user_endpoint_config("all", sif) == {"container_type": "apptainer",
                                                "container_uri": "/images/xtract-all.sif"}
    hub = GlobusComputeSettings(container_type="docker", container_path="ghcr.io/lab", container_tag="1.2")
    assert container_uri("hdf5", hub) == "ghcr.io/lab/xtract-hdf5:1.2"
    oras = GlobusComputeSettings(container_type="apptainer", container_path="docker://ghcr.io/lab")
    assert container_uri("text", oras) == "docker://ghcr.io/lab/xtract-text:latest"
    assert user_endpoint_config("text", GlobusComputeSettings()) is None


def test_compute_registration_idempotent_keyed_on_code_checksum(compute_loop, tmp_path):
    """The production registration (SdkBackend + ensure_registered) against the service: the same code is
    registered once, a change registers again, and the service holds the code the checksum was taken of."""
    svc = compute_loop.service
    backend = SdkBackend(compute_loop.endpoint_id, compute_loop.credentials())
    name = f"reg-{uuid.uuid4().hex[:12]}"
    before = len(svc.functions)
    first = ensure_registered(backend, name)
    again = ensure_registered(backend, name)
    assert first["status"] == "registered" and again["status"] == "reused"
    assert again["function_id"] == first["function_id"] and len(svc.functions) == before + 1
    assert again["checksum"] == function_checksum()
    stored = svc.functions[first["function_id"]]["function_code"]
    serialized = stored.split("\n", 1)[1]  # pack_buffers: "<length>\n<serialized function>"
    assert serialized == make_serializer().serialize(xtract_remote_batch)
    assert first["key"].startswith("globus-compute:http://localhost:5000/")

    # the same entry function after a code change (a module with edited source)
    src = tmp_path / "entry_v2.py"
    src.write_text("def xtract_remote_batch(groups, limit_s=None, max_result_bytes=1):\n    return 'v2'\n")
    spec = importlib.util.spec_from_file_location("entry_v2", src)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    changed = mod.xtract_remote_batch
    new = ensure_registered(backend, name, changed)
    assert new["status"] == "registered" and new["function_id"] != first["function_id"]
    assert len(svc.functions) == before + 2
    stored = load_registry(name).functions
    assert stored[new["key"]]["function_id"] == new["function_id"]
    assert stored[new["key"]]["checksum"] == function_checksum(changed) != first["checksum"]
    with pytest.raises(ComputeConfigError, match="funcx_ep_id"):
        make_backend(None, GlobusComputeSettings(), None)
    with pytest.raises(ComputeConfigError, match="interactive login"):
        make_backend("ep", GlobusComputeSettings(backend="sdk"), None)


def test_compute_pool_chunks_results_and_refuses_oversized_group(compute_loop, tmp_path):
    """A small payload limit makes the pool halve batches and the entry function stop early (continuation);
    a group whose payload alone is over the limit becomes an error record without being sent."""
    groups = [group_of(wide_csv(tmp_path / "d" / f"t{i}.csv"), f"g{i}") for i in range(8)]  # ~11 KB metadata each
    huge = tmp_path / "d" / ("x" * 200)
    huge.mkdir()
    big = group_of(write_csv(huge / "big.csv"), "big")
    big["note"] = "p" * 40_000  # travels with the group: its payload alone is over the limit
    svc = compute_loop.service
    before = set(svc.tasks)
    counters, docs = pool_run(compute_loop, tmp_path / "out", sdk_settings(payload_limit_bytes=30_000),
                              [*groups, big])
    assert set(docs) == {g["group_id"] for g in groups} | {"big"}
    assert all(docs[g["group_id"]]["metadata"]["tabular"]["rows"] == 20 for g in groups)
    assert docs["big"]["errors"][0]["type"] == "PayloadTooLarge"
    assert counters.fx_success == 8 and counters.fx_failed == 1
    sent = [t for tid, t in svc.tasks.items() if tid not in before]
    assert all(t.payload_bytes <= 30_000 for t in sent)
    assert len(sent) > 2  # 2 batches of 4 groups could not go as 2 tasks: results were chunked


@pytest.mark.slow
def test_compute_endpoint_killed_mid_batch_loses_nothing(compute_loop, tmp_path):
    """The user endpoint process (and its workers) is SIGKILLed while it runs a batch: its tasks never return,
    the run's deadline abandons them (TaskLost), the groups are retried through a new user endpoint that the
    real endpoint starts, and every file is recorded exactly once, none as an error."""
    files = small_corpus(tmp_path / "data")
    files["big"] = big_csv(tmp_path / "data" / "big.csv")
    groups = [group_of(p, name) for name, p in sorted(files.items())]
    ep = compute_loop.endpoint
    before = set(compute_loop.service.tasks)
    starts_before = ep.core_log().count("Creating new user endpoint")
    killed: list[int] = []
    counters, docs = pool_run(  # one group per batch: a lost batch waits for its own short deadline only
        compute_loop, tmp_path / "out", sdk_settings(), groups, limit_s=15.0, grace_s=3.0, max_groups=1,
        during=lambda pool: when_running(compute_loop, before, lambda: killed.extend(ep.kill_user_endpoints())))
    assert killed, "no task was caught running on the user endpoint"
    assert set(docs) == set(files)
    assert {name: d["errors"] for name, d in docs.items() if name != "bad" and d["errors"]} == {}
    assert docs["big"]["metadata"]["tabular"]["rows"] == 400_000
    assert counters.retries >= 1 and counters.pool_restarts >= 1
    paths = [f["path"] for d in docs.values() for f in d["files"]]
    assert sorted(paths) == sorted(map(str, files.values()))  # every file once
    assert ep.core_log().count("Creating new user endpoint") > starts_before  # a new user endpoint ran the retries


@pytest.mark.slow
def test_compute_whole_endpoint_killed_and_restarted_mid_batch(compute_loop, tmp_path):
    """The core endpoint process and everything below it are SIGKILLed while a batch runs, then the endpoint
    is started again (it re-registers under its id): the lost tasks are abandoned at the run's deadline, the
    retries queued meanwhile in the broker are taken by the restarted endpoint, and every file is recorded
    once, none as an error."""
    files = small_corpus(tmp_path / "data")
    files["big"] = big_csv(tmp_path / "data" / "big.csv")
    groups = [group_of(p, name) for name, p in sorted(files.items())]
    ep, svc = compute_loop.endpoint, compute_loop.service
    endpoint_id, core_pid = ep.endpoint_id, ep.proc.pid
    before = set(svc.tasks)
    crashed: list[int] = []

    def crash_and_restart(pool) -> None:
        when_running(compute_loop, before, lambda: crashed.extend(ep.crash()))
        time.sleep(1.0)
        ep.start(clear_pid_file=True)

    counters, docs = pool_run(compute_loop, tmp_path / "out", sdk_settings(), groups, limit_s=15.0, grace_s=3.0,
                              max_groups=1, during=crash_and_restart)
    assert core_pid in crashed and ep.proc.pid != core_pid
    assert ep.endpoint_id == endpoint_id and ("PUT", f"/v3/endpoints/{endpoint_id}", 200) in svc.log
    assert set(docs) == set(files)
    assert {name: d["errors"] for name, d in docs.items() if name != "bad" and d["errors"]} == {}
    assert counters.retries >= 1 and counters.pool_restarts >= 1
    paths = [f["path"] for d in docs.values() for f in d["files"]]
    assert sorted(paths) == sorted(map(str, files.values()))  # every file once


@pytest.mark.slow
def test_compute_task_that_never_returns_becomes_an_error_record(compute_loop, tmp_path):
    """The user endpoint and its workers are SIGSTOPped while a task runs: nothing returns and nothing dies,
    only the run's watchdog can help. It restarts the pool, the retry meets the same stopped endpoint, and
    the group becomes an error record; the run completes."""
    big = group_of(big_csv(tmp_path / "big.csv"), "frozen")
    ep = compute_loop.endpoint
    before = set(compute_loop.service.tasks)
    stopped: list[int] = []

    def freeze() -> None:
        stopped.extend(p for p in ep.kill_user_endpoints(signal.SIGSTOP))

    try:
        counters, docs = pool_run(compute_loop, tmp_path / "out", sdk_settings(), [big], limit_s=3.0, grace_s=2.0,
                                  during=lambda pool: when_running(compute_loop, before, freeze))
    finally:
        for pid in stopped:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
    assert stopped and counters.pool_restarts >= 2
    assert docs["frozen"]["errors"][0]["type"] == "TimeoutError" and docs["frozen"]["metadata"] == {}
    assert counters.fx_failed == 1 and counters.fx_success == 0


def test_compute_flow_with_containers_registry_and_counters(compute_loop, tmp_path):
    """The flow with executor 'globus-compute' on the real endpoint: images chosen per family through
    user_endpoint_config, the registry and counters published as artifacts, and a rerun reuses the function."""
    files = small_corpus(tmp_path / "data")
    settings = sdk_settings(container_type="apptainer", container_path="/images")
    ep = XtractEndpoint(dirs=[str(tmp_path / "data")], local_mdata_path=str(tmp_path / "out"),
                        funcx_ep_id=compute_loop.endpoint_id, credentials=compute_loop.credentials())
    svc = compute_loop.service
    subs_before, fns_before = len(svc.submissions), len(svc.functions)
    state = xtract_endpoint(ep, extraction=ExtractionOptions(executor="globus-compute", workers=2),
                            compute_settings=settings, return_state=True)
    assert state.is_completed(), state.message
    summary = state.result()
    idx = check_contract(tmp_path / "out", expected_files=6)
    status = dict(zip(idx["path"], idx["status"], strict=True))
    assert status[str(files["t1"])] == "ok" and status[str(files["bad"])] == "error"
    assert summary["xtract_counters"]["fx"] == {"pending": 0, "success": 5, "failed": 1}
    uris = {s["user_endpoint_config"]["container_uri"] for s in svc.submissions[subs_before:]}
    assert uris and all(u.startswith("/images/xtract-") and u.endswith(".sif") for u in uris)
    assert "/images/xtract-tabular.sif" in uris
    with get_client(sync_client=True) as client:
        arts = client.read_artifacts(artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[summary["flow_run_id"]])))
    by_key = {a.key: a for a in arts if a.key}
    registry = next(a for k, a in by_key.items() if k.endswith("compute-functions"))
    rows = json.loads(registry.data) if isinstance(registry.data, str) else registry.data
    assert rows[0]["this_run"] == "registered" and rows[0]["function_id"] in svc.functions
    containers = next(a for k, a in by_key.items() if k.endswith("containers"))
    assert "/images/xtract-" in str(containers.data)
    counters = next(a for k, a in by_key.items() if k.endswith("xtract-counters"))
    assert "fx.success" in str(counters.data)
    assert len(svc.functions) == fns_before + 1

    # a second run reuses the registered function (same code), skips the done groups, retries the failed one
    tasks_before = len(svc.tasks)
    again = xtract_endpoint(ep, extraction=ExtractionOptions(executor="globus-compute", workers=2),
                            compute_settings=settings, return_state=True)
    assert again.is_completed() and again.result()["skipped"] == 5
    assert len(svc.functions) == fns_before + 1 and len(svc.tasks) == tasks_before + 1


def test_compute_standin_dry_run_backend(tmp_path):
    """backend='local-standin' is a dry run without an endpoint: same payloads and limits, local workers."""
    from tasks.pools.globus_compute.standin import registered_functions

    small_corpus(tmp_path / "data")
    settings = GlobusComputeSettings(backend="local-standin", standin_dir=str(tmp_path / "endpoint"),
                                     registry_block=f"reg-{uuid.uuid4().hex[:12]}", container_type="apptainer",
                                     container_path="/images")
    ep = XtractEndpoint(dirs=[str(tmp_path / "data")], local_mdata_path=str(tmp_path / "out"), funcx_ep_id="dry")
    state = xtract_endpoint(ep, extraction=ExtractionOptions(executor="globus-compute", workers=2),
                            compute_settings=settings, return_state=True)
    assert state.is_completed(), state.message
    assert state.result()["xtract_counters"]["fx"] == {"pending": 0, "success": 5, "failed": 1}
    check_contract(tmp_path / "out", expected_files=6)
    log = [json.loads(line) for line in (tmp_path / "endpoint" / "submissions.jsonl").read_text().splitlines()]
    assert "/images/xtract-tabular.sif" in {e["user_endpoint_config"]["container_uri"] for e in log}
    assert len(registered_functions(str(tmp_path / "endpoint"))) == 1
