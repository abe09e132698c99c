"""The unmodified globus_compute_sdk Executor and a real globus-compute-endpoint, end to end on this machine.

The chain (``tests/compute_service``): SDK Client/Executor -> loopback Compute web service (HTTP) ->
real RabbitMQ broker -> real ``globus-compute-endpoint`` (core endpoint, which starts a user endpoint
per ``user_endpoint_config``) -> its engine's worker processes -> results back through the broker to
the SDK's AMQP result watcher. Only the web service is ours; it forwards as the real one does.
"""

from __future__ import annotations

import hashlib
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


def test_compute_real_registration_idempotent_keyed_on_checksum(compute_loop, tmp_path):
    """The production registration (SdkBackend + ensure_registered) against the service: the same code is
    registered once, a change registers again, and the service holds the code the checksum was taken of."""
    from tasks.pools.globus_compute.registration import SdkBackend, ensure_registered, function_checksum

    svc = compute_loop.service
    backend = SdkBackend(compute_loop.endpoint_id, compute_loop.credentials())
    name = f"reg-{uuid.uuid4().hex[:12]}"
    before = len(svc.functions)
    first = ensure_registered(backend, name)
    again = ensure_registered(backend, name)
    assert first["status"] == "registered" and again["status"] == "reused"
    assert again["function_id"] == first["function_id"] and len(svc.functions) == before + 1
    stored = svc.functions[first["function_id"]]["function_code"]
    serde_code = stored.split("\n", 1)[1]  # pack_buffers: "<length>\n<serialized function>"
    assert hashlib.sha256(serde_code.encode("utf-8")).hexdigest() == first["checksum"] == function_checksum()
    assert first["key"].startswith("globus-compute:http://localhost:5000/")

    src = tmp_path / "entry_v2.py"
    src.write_text("def xtract_remote_batch(groups, limit_s=None, max_result_bytes=1):\n    return 'v2'\n")
    import importlib.util

    spec = importlib.util.spec_from_file_location("entry_v2", src)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    changed = ensure_registered(backend, name, mod.xtract_remote_batch)
    assert changed["status"] == "registered" and changed["function_id"] != first["function_id"]
    assert len(svc.functions) == before + 2
