"""The unmodified globus_compute_sdk Executor and a real globus-compute-endpoint, end to end on this machine.

The chain (``tests/compute_service``): SDK Client/Executor -> loopback Compute web service (HTTP) ->
real RabbitMQ broker -> real ``globus-compute-endpoint`` (core endpoint, which starts a user endpoint
per ``user_endpoint_config``) -> its engine's worker processes -> results back through the broker to
the SDK's AMQP result watcher. Only the web service is ours; it forwards as the real one does.
"""

from __future__ import annotations

import uuid

import pytest
from globus_compute_sdk import Executor
from globus_compute_sdk.errors import TaskExecutionFailed
from globus_compute_sdk.serialize import ComputeSerializer, PureSourceTextInspect
from globus_sdk import GlobusAPIError

from extractors.batch import run_batch
from tests.compute_service.service import PAYLOAD_LIMIT
from tests.helpers import small_corpus

TIMING_FIELDS = ("extracted_at", "seconds")


def by_source(loop):
    """A Client whose functions travel by source: this test module does not exist on the endpoint."""
    client = loop.client()
    client.fx_serializer = ComputeSerializer(strategy_code=PureSourceTextInspect())
    return client


def square(x):
    return x * x


def text_of(n):
    return "r" * n


def length(s):
    return len(s)


def fails(tag):
    raise ValueError(f"remote failure {tag}")


def whoami():
    import os
    import sys

    return {"pid": os.getpid(), "ppid": os.getppid(), "path": sys.path,
            "prefect": __import__("importlib.util").util.find_spec("prefect") is not None}


def group_of(path, gid):
    st = path.stat()
    return {"group_id": gid, "fingerprint": "fp", "endpoint": "test", "extractor": None,
            "files": [{"path": str(path), "size": st.st_size, "mtime": st.st_mtime,
                       "extension": path.suffix.lstrip("."), "mime": None, "extractor": None}]}


def without_timings(results):
    out = []
    for r in results:
        r = {**r, "doc": {k: v for k, v in r["doc"].items() if k not in TIMING_FIELDS}}
        r.pop("seconds", None)
        out.append(r)
    return out


def test_compute_real_endpoint_runs_sdk_executor_tasks(compute_loop):
    """Plain functions through the SDK Executor: the tasks cross the broker to a user endpoint process of
    the real endpoint, run in its worker processes, and the results come back through the result watcher."""
    client = by_source(compute_loop)
    with Executor(endpoint_id=compute_loop.endpoint_id, client=client) as ex:
        futs = [ex.submit(square, i) for i in range(5)]
        assert [f.result(timeout=120) for f in futs] == [0, 1, 4, 9, 16]
        info = ex.submit(whoami).result(timeout=120)
    svc = compute_loop.service
    uep = svc.user_endpoint_for(compute_loop.endpoint_id, None)
    records = [svc.tasks[f.task_id] for f in futs]
    assert all(r.status == "success" and r.user_endpoint_id == uep for r in records)
    assert {str(r.result.details["endpoint_id"]) for r in records} == {uep}  # reported by the user endpoint
    # the worker is a process below the real endpoint; only `extractors` is on its path, not Prefect
    uep_pids = compute_loop.endpoint.user_endpoints()
    assert uep_pids and info["ppid"] in uep_pids
    assert info["prefect"] is False
    assert client.get_endpoint_status(compute_loop.endpoint_id)["status"] == "online"
    assert ("POST", f"/v3/endpoints/{compute_loop.endpoint_id}/submit", 200) in svc.log


def test_compute_real_endpoint_runs_the_extractor_entry_function(compute_loop, tmp_path):
    """The registered entry function (by source, JSON data) extracts a batch on the endpoint; the results equal
    run_batch's in this process."""
    from tasks.pools.globus_compute.entry import xtract_remote_batch
    from tasks.pools.globus_compute.sizing import RESULT_SERIALIZERS, make_serializer

    files = small_corpus(tmp_path / "data")
    groups = [group_of(p, name) for name, p in sorted(files.items())]
    client = compute_loop.client()
    client.fx_serializer = make_serializer()
    with Executor(endpoint_id=compute_loop.endpoint_id, client=client, result_serializers=RESULT_SERIALIZERS) as ex:
        fid = ex.register_function(xtract_remote_batch)
        out = ex.submit_to_registered_function(fid, args=(groups,), kwargs={"limit_s": 30}).result(timeout=180)
    assert out["remaining"] == []
    assert without_timings(out["results"]) == without_timings(run_batch(groups, limit_s=30))
    status = {r["group_id"]: r["files"][0]["status"] for r in out["results"]}
    assert status["t1"] == "ok" and status["bad"] == "error"
    # the service keeps the function exactly as the SDK serialized it (by source)
    code = compute_loop.service.functions[fid]["function_code"]
    serde = make_serializer()
    assert code == serde.pack_buffers([serde.serialize(xtract_remote_batch)])


def test_compute_real_endpoint_payload_and_result_limits(compute_loop):
    """The service refuses a payload over 10 MB (HTTP 413 on the future); the endpoint refuses a result over
    10 MiB (MaxResultSizeExceeded, as a remote failure); a result just under the limit comes back whole."""
    client = by_source(compute_loop)
    with Executor(endpoint_id=compute_loop.endpoint_id, client=client) as ex:
        big = ex.submit(length, "p" * (PAYLOAD_LIMIT + 10))
        with pytest.raises(GlobusAPIError) as refused:
            big.result(timeout=120)
        assert refused.value.http_status == 413 and "exceeds" in refused.value.message
    json_results = ["globus_compute_sdk.serialize.JSONData"]  # as the pool asks: no base64 growth
    with Executor(endpoint_id=compute_loop.endpoint_id, client=client, result_serializers=json_results) as ex:
        near = ex.submit(text_of, 9 * 1024 * 1024)
        over = ex.submit(text_of, 10 * 1024 * 1024 + 1)
        assert len(near.result(timeout=120)) == 9 * 1024 * 1024
        with pytest.raises(TaskExecutionFailed, match="MaxResultSizeExceeded|exceeded current limit"):
            over.result(timeout=120)


def test_compute_real_endpoint_remote_failure_comes_back_as_task_execution_failed(compute_loop):
    tag = uuid.uuid4().hex[:8]
    client = by_source(compute_loop)
    with Executor(endpoint_id=compute_loop.endpoint_id, client=client) as ex:
        bad, good = ex.submit(fails, tag), ex.submit(square, 7)
        with pytest.raises(TaskExecutionFailed, match=f"ValueError: remote failure {tag}"):
            bad.result(timeout=120)
        assert good.result(timeout=120) == 49
    assert compute_loop.service.tasks[bad.task_id].status == "failed"


# -- ComputePool (the production pool) on the real SDK Executor ------------------------------------------------


def sdk_settings(**kw):
    from xtract_blocks import GlobusComputeSettings

    return GlobusComputeSettings(backend="sdk", registry_block=f"reg-{uuid.uuid4().hex[:12]}", **kw)


def run_pool(loop, out, groups, settings, *, limit_s=20.0, grace_s=20.0, workers=2, during=None, max_groups=4):
    """ExtractionRun over a ComputePool whose executor is the unmodified globus_compute_sdk.Executor."""
    import json
    import threading

    from tasks.pools.base import ComputeOptions, PoolSpec
    from tasks.pools.plan import open_pool
    from tasks.store.journal import StateStore
    from tasks.xtract import ExtractionRun, make_batches

    spec = PoolSpec(kind="globus-compute", workers=workers, compute=ComputeOptions(
        endpoint_id=loop.endpoint_id, settings=settings, credentials=loop.credentials()))
    pool = open_pool(spec)
    assert type(pool.executor) is Executor  # the SDK's own, nothing in between
    (out / "groups").mkdir(parents=True, exist_ok=True)
    state = StateStore(str(out / ".xtract"))
    try:
        run = ExtractionRun(pool, state, "run-1", str(out), limit_s=limit_s, max_retries=1, grace_s=grace_s,
                            poll_s=0.2)
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


def test_compute_real_pool_selects_containers_through_user_endpoint_config(compute_loop, tmp_path):
    """Each extractor family's tasks carry its image in user_endpoint_config; the service starts one user endpoint
    per config on the real endpoint (rendered from its template, validated by its schema), and each family's
    tasks ran there."""
    files = small_corpus(tmp_path / "data")
    groups = []
    for name, p in sorted(files.items()):
        g = group_of(p, name)
        g["extractor"] = {"t1": "tabular", "t2": "tabular", "t3": "tabular", "bad": "tabular", "txt": "text"}.get(name)
        groups.append(g)
    settings = sdk_settings(container_type="apptainer", container_path="/images")
    svc = compute_loop.service
    before = len(svc.submissions)
    counters, docs = run_pool(compute_loop, tmp_path / "out", groups, settings, max_groups=6)
    assert set(docs) == set(files) and counters.fx_success == 5 and counters.fx_failed == 1
    subs = svc.submissions[before:]
    uris = {s["user_endpoint_config"]["container_uri"]: s["user_endpoint_id"] for s in subs}
    assert set(uris) == {"/images/xtract-tabular.sif", "/images/xtract-text.sif", "/images/xtract-all.sif"}
    assert len(set(uris.values())) == 3  # one user endpoint per image
    for s in subs:
        assert s["user_endpoint_config"]["container_type"] == "apptainer"
    by_uep = {}
    for t in svc.tasks.values():
        if t.user_endpoint_id in uris.values() and t.result is not None:
            by_uep.setdefault(t.user_endpoint_id, set()).add(str(t.result.details["endpoint_id"]))
    assert all(reported == {uep} for uep, reported in by_uep.items()) and len(by_uep) == 3
    with open(compute_loop.endpoint.setup_log) as fh:  # the template rendered each image into its endpoint
        rendered = fh.read()
    assert all(f"apptainer {u}" in rendered for u in uris)


def docs_without_timings(out):
    import json

    docs = {}
    for p in (out / "groups").glob("*.json"):
        doc = json.loads(p.read_text())
        for key in TIMING_FIELDS:
            doc.pop(key, None)
        docs[p.stem] = doc
    return docs


@pytest.mark.slow
def test_compute_real_flow_results_identical_to_local_pool(compute_loop, tmp_path):
    """The xtract flow with executor 'globus-compute' (SDK Executor, real endpoint) writes the same index and
    group documents as the local process pool over the same tree."""
    import pandas as pd

    from flows.endpoint_flow import xtract_endpoint
    from tasks.pools.options import ExtractionOptions
    from tests.helpers import check_contract, write_csv
    from xtract_blocks import XtractEndpoint

    data = tmp_path / "data"
    small_corpus(data)
    for i in range(6):
        write_csv(data / "more" / f"m{i}.csv", rows=5 + i)

    def run(out, compute_settings=None, **opts):
        ep = XtractEndpoint(dirs=[str(data)], local_mdata_path=str(out), funcx_ep_id=compute_loop.endpoint_id,
                            credentials=compute_loop.credentials())
        state = xtract_endpoint(ep, extraction=ExtractionOptions(workers=2, **opts),
                                compute_settings=compute_settings, return_state=True)
        assert state.is_completed(), state.message
        return state.result()

    local = run(tmp_path / "local")
    before = len(compute_loop.service.tasks)
    remote = run(tmp_path / "compute", executor="globus-compute", compute_settings=sdk_settings())
    assert len(compute_loop.service.tasks) > before  # the work went through the service and the endpoint
    frames = {name: check_contract(tmp_path / name, expected_files=12).sort_values("path").reset_index(drop=True)
              for name in ("local", "compute")}
    pd.testing.assert_frame_equal(frames["local"], frames["compute"])
    assert docs_without_timings(tmp_path / "local") == docs_without_timings(tmp_path / "compute")
    assert (remote["extracted"], remote["failed"]) == (local["extracted"], local["failed"]) == (10, 1)
