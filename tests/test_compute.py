"""Globus Compute path: SDK serializer round trips, the local stand-in, registration, sizing, faults, the flow.

No Globus service is reachable, so the endpoint is ``tasks.pools.globus_compute.standin`` (see
docs/compute.md for why the SDK Executor itself cannot be pointed at a loopback).
Every payload still goes through globus_compute_sdk's ComputeSerializer and runs in
a fresh interpreter where only ``extractors`` is importable.
"""

from __future__ import annotations

import json
import os
import pathlib
import signal
import threading
import time
import uuid

import pytest
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
    StandinBackend,
    ensure_registered,
    function_checksum,
    load_registry,
    make_backend,
)
from tasks.pools.globus_compute.sizing import fit_payload, make_serializer, payload_bytes
from tasks.pools.globus_compute.standin import LocalComputeEndpoint, registered_functions
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


def standin_settings(tmp_path: pathlib.Path, **kw) -> GlobusComputeSettings:
    return GlobusComputeSettings(backend="local-standin", standin_dir=str(tmp_path / "endpoint"),
                                 registry_block=f"reg-{uuid.uuid4().hex[:12]}", **kw)


def test_compute_entry_functions_round_trip_sdk_serializers_in_fresh_interpreter(tmp_path):
    """run_batch and the registered wrapper survive every SDK code strategy and run after deserialization."""
    files = small_corpus(tmp_path / "data")
    groups = [group_of(files["t2"], "t2"), group_of(files["bad"], "bad")]
    ex = LocalComputeEndpoint("ep", state_dir=str(tmp_path / "ep"), workers=1)
    try:
        for data in (JSONData(), DillDataBase64()):  # run_batch goes by reference: the endpoint has extractors
            ex.serializer = ComputeSerializer(strategy_code=DillCode(), strategy_data=data)
            fid = ex.register_function(run_batch)
            res = ex.submit_to_registered_function(fid, (groups,), {"limit_s": 20}).result(timeout=120)
            assert [r["files"][0]["status"] for r in res] == ["ok", "error"]
            assert res[0]["doc"]["metadata"]["tabular"]["rows"] == 10
        # by source, run_batch loses its module's names; that is why the registered entry is a self-contained
        # wrapper that imports inside its body, and it survives every code strategy
        ex.serializer = ComputeSerializer(strategy_code=PureSourceTextInspect())
        fid = ex.register_function(run_batch)
        with pytest.raises(Exception, match="NameError"):
            ex.submit_to_registered_function(fid, (groups,), {"limit_s": 20}).result(timeout=120)
        for code in (PureSourceTextInspect(), PureSourceDill(), AllCodeStrategies()):  # by source, not reference
            ex.serializer = ComputeSerializer(strategy_code=code, strategy_data=JSONData())
            fid = ex.register_function(xtract_remote_batch)
            out = ex.submit_to_registered_function(fid, (groups,), {"limit_s": 20}).result(timeout=120)
            assert out["remaining"] == [] and [r["group_id"] for r in out["results"]] == ["t2", "bad"]
            assert [r["files"][0]["status"] for r in out["results"]] == ["ok", "error"]
        ex.serializer = make_serializer()
        # the worker cannot import Prefect or our Prefect-side packages: the entry needs only extractors
        import tasks.pools.globus_compute.standin as standin_mod

        ex.serializer = ComputeSerializer(strategy_code=DillCode())  # by reference: needs module `tasks`
        probe = ex.submit(standin_mod.registered_functions, str(tmp_path))
        with pytest.raises(Exception, match="not available on the compute endpoint"):
            probe.result(timeout=60)
    finally:
        ex.shutdown()


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
    ex = LocalComputeEndpoint("ep", state_dir=str(tmp_path / "ep"), workers=1, payload_limit=limit)
    try:
        fut = ex.submit(xtract_remote_batch, groups)
        with pytest.raises(PayloadTooLarge):
            fut.result(timeout=5)
    finally:
        ex.shutdown()


def test_compute_registration_idempotent_keyed_on_code_checksum(tmp_path):
    backend = StandinBackend("ep", str(tmp_path / "ep"), 10 * 1024 * 1024)
    name = f"reg-{uuid.uuid4().hex[:12]}"
    first = ensure_registered(backend, name)
    again = ensure_registered(backend, name)
    assert first["status"] == "registered" and again["status"] == "reused"
    assert again["function_id"] == first["function_id"] and again["checksum"] == function_checksum()
    assert registered_functions(backend.state_dir) == [first["function_id"]]

    # the same entry function after a code change (a module with edited source)
    src = tmp_path / "entry_v2.py"
    src.write_text("def xtract_remote_batch(groups, limit_s=None, max_result_bytes=1):\n    return 'v2'\n")
    import importlib.util

    spec = importlib.util.spec_from_file_location("entry_v2", src)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    changed = mod.xtract_remote_batch
    new = ensure_registered(backend, name, changed)
    assert new["status"] == "registered" and new["function_id"] != first["function_id"]
    stored = load_registry(name).functions
    assert stored[new["key"]]["function_id"] == new["function_id"]
    assert stored[new["key"]]["checksum"] == function_checksum(changed) != first["checksum"]
    with pytest.raises(ComputeConfigError, match="funcx_ep_id"):
        make_backend(None, GlobusComputeSettings(), None)
    with pytest.raises(ComputeConfigError, match="interactive login"):
        make_backend("ep", GlobusComputeSettings(backend="sdk"), None)


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


def _pool_run(tmp_path, settings, groups, *, limit_s=20.0, grace_s=30.0, workers=2, during=None):
    spec = PoolSpec(kind="globus-compute", workers=workers, compute=ComputeOptions("ep-1", settings))
    pool = open_pool(spec)
    out = tmp_path / "out"
    (out / "groups").mkdir(parents=True, exist_ok=True)
    state = StateStore(str(out / ".xtract"))
    try:
        run = ExtractionRun(pool, state, "run-1", str(out), limit_s=limit_s, max_retries=1, grace_s=grace_s,
                            poll_s=0.2)
        worker = threading.Thread(target=during, args=(pool,), daemon=True) if during else None
        if worker:
            worker.start()
        counters = run.run(make_batches(iter(groups), max_groups=4), max_in_flight=2)
        if worker:
            worker.join(timeout=30)
    finally:
        pool.close()
        state.close()
    docs = {p.stem: json.loads(p.read_text()) for p in (out / "groups").glob("*.json")}
    return counters, docs


def test_compute_pool_chunks_results_and_refuses_oversized_group(tmp_path):
    """Small limits force payload splits and result continuation; an oversized group becomes an error record."""
    groups = [group_of(wide_csv(tmp_path / "d" / f"t{i}.csv"), f"g{i}") for i in range(8)]  # ~11 KB metadata each
    huge = tmp_path / "d" / ("x" * 200)
    huge.mkdir()
    big = group_of(write_csv(huge / "big.csv"), "big")
    big["note"] = "p" * 40_000  # travels with the group: its payload alone is over the limit
    settings = standin_settings(tmp_path, payload_limit_bytes=30_000)
    counters, docs = _pool_run(tmp_path, settings, [*groups, big])
    assert set(docs) == {g["group_id"] for g in groups} | {"big"}
    assert all(docs[g["group_id"]]["metadata"]["tabular"]["rows"] == 20 for g in groups)
    assert docs["big"]["errors"][0]["type"] == "PayloadTooLarge"
    assert counters.fx_success == 8 and counters.fx_failed == 1
    log = [json.loads(line) for line in (tmp_path / "endpoint" / "submissions.jsonl").read_text().splitlines()]
    assert all(entry["payload_bytes"] <= 30_000 for entry in log)
    assert len(log) > 2  # 2 batches of 4 groups could not go as 2 tasks: results were chunked


def _fifo_writer(fifo: pathlib.Path, held: list[int]) -> None:
    """Wait until a worker blocks opening the FIFO; hold it open so its read blocks forever."""
    give_up = time.monotonic() + 30
    while time.monotonic() < give_up:
        try:
            held.append(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            return
        except OSError:
            time.sleep(0.05)


@pytest.mark.slow
def test_compute_faults_lost_worker_and_task_that_never_returns(tmp_path):
    """A killed worker loses its task (retried); a stopped worker never answers (watchdog restarts, retried);
    a file that blocks forever hits the remote time limit and becomes an error record."""
    ok = group_of(write_csv(tmp_path / "ok.csv"), "ok")
    fifo = tmp_path / "stuck.csv"
    os.mkfifo(fifo)
    stuck = group_of(fifo, "stuck")
    held: list[int] = []

    def sabotage(pool) -> None:
        _fifo_writer(fifo, held)  # attempt 1 is blocked on the FIFO: kill its worker process
        proc = next(w.proc for w in pool.executor._workers if w.proc is not None)
        proc.send_signal(signal.SIGKILL)

    try:
        counters, docs = _pool_run(tmp_path, standin_settings(tmp_path), [ok, stuck], limit_s=2.0, grace_s=15.0,
                                   workers=1, during=sabotage)
    finally:
        for fd in held:
            os.close(fd)
    assert docs["ok"]["errors"] == [] and docs["ok"]["metadata"]["tabular"]["rows"] == 3
    assert docs["stuck"]["errors"][0]["type"] == "TimeoutError"
    assert counters.retries >= 1 and counters.fx_failed == 1 and counters.fx_success == 1

    held.clear()
    fifo2 = tmp_path / "stuck2.csv"
    os.mkfifo(fifo2)

    def freeze(pool) -> None:
        _fifo_writer(fifo2, held)
        proc = next(w.proc for w in pool.executor._workers if w.proc is not None)
        proc.send_signal(signal.SIGSTOP)  # never answers, never dies: only the watchdog can help

    try:
        counters, docs = _pool_run(tmp_path / "second", standin_settings(tmp_path / "second"),
                                   [group_of(fifo2, "frozen")], limit_s=1.0, grace_s=1.0, workers=1, during=freeze)
    finally:
        for fd in held:
            os.close(fd)
    assert counters.pool_restarts >= 1
    assert docs["frozen"]["errors"][0]["type"] == "TimeoutError"


def test_compute_flow_with_containers_registry_and_counters(tmp_path):
    files = small_corpus(tmp_path / "data")
    settings = standin_settings(tmp_path, container_type="apptainer", container_path="/images")
    ep = XtractEndpoint(dirs=[str(tmp_path / "data")], local_mdata_path=str(tmp_path / "out"), funcx_ep_id="ep-1")
    state = xtract_endpoint(ep,
                            extraction=ExtractionOptions(executor="globus-compute", workers=2),
                            compute_settings=settings,
                            return_state=True)
    assert state.is_completed(), state.message
    summary = state.result()
    idx = check_contract(tmp_path / "out", expected_files=6)
    status = dict(zip(idx["path"], idx["status"], strict=True))
    assert status[str(files["t1"])] == "ok" and status[str(files["bad"])] == "error"
    assert summary["xtract_counters"]["fx"] == {"pending": 0, "success": 5, "failed": 1}
    log = [json.loads(line) for line in (tmp_path / "endpoint" / "submissions.jsonl").read_text().splitlines()]
    uris = {e["user_endpoint_config"]["container_uri"] for e in log}
    assert uris and all(u.startswith("/images/xtract-") and u.endswith(".sif") for u in uris)
    assert "/images/xtract-tabular.sif" in uris
    with get_client(sync_client=True) as client:
        arts = client.read_artifacts(artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[summary["flow_run_id"]])))
    by_key = {a.key: a for a in arts if a.key}
    registry = next(a for k, a in by_key.items() if k.endswith("compute-functions"))
    rows = json.loads(registry.data) if isinstance(registry.data, str) else registry.data
    assert rows[0]["this_run"] == "registered" and rows[0]["function_id"]
    containers = next(a for k, a in by_key.items() if k.endswith("containers"))
    assert "/images/xtract-" in str(containers.data)
    counters = next(a for k, a in by_key.items() if k.endswith("xtract-counters"))
    assert "fx.success" in str(counters.data)

    # a second run reuses the registered function (same code) and skips the done groups
    again = xtract_endpoint(ep, extraction=ExtractionOptions(executor="globus-compute", workers=2),
                            compute_settings=settings, return_state=True)
    assert again.is_completed() and again.result()["skipped"] == 6
    assert registered_functions(str(tmp_path / "endpoint")) == [rows[0]["function_id"]]
