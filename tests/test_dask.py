"""Dask path: a LocalCluster sized to the machine, equivalence with the process pool and Globus Compute, faults.

One LocalCluster (worker processes, ~10 s to start on 2 cores) serves the whole module:
the flows reach it by address, exactly like ``xtract run --executor dask --dask-address``.
"""

from __future__ import annotations

import json
import os
import pathlib
import uuid
import zipfile

import pandas as pd
import pytest
from distributed import KilledWorker

from bench.latency_plugin import write_plugin
from extractors.registry import reload_registry
from flows.cli import main as cli_main
from flows.endpoint_flow import xtract_endpoint
from tasks.pools.base import PoolSpec
from tasks.pools.options import ExtractionOptions
from tasks.pools.plan import open_pool
from tasks.store.journal import StateStore
from tasks.xtract import ExtractionRun, make_batches
from tests.helpers import check_contract, small_corpus, write_csv
from xtract_blocks import GlobusComputeSettings, XtractEndpoint

#: Fields of a group document that legitimately differ between runs.
TIMING_FIELDS = ("extracted_at", "seconds")


@pytest.fixture(scope="module")
def dask_pool():
    """The pool ``--executor dask`` opens without an address: a LocalCluster of worker processes."""
    pool = open_pool(PoolSpec(kind="dask", workers=2, memory_limit_mb=2048))
    try:
        yield pool
    finally:
        pool.close()


def run_flow(data: pathlib.Path, out: pathlib.Path, compute_settings: GlobusComputeSettings | None = None,
             funcx_ep_id: str = "ep-equiv", credentials=None, **options) -> dict:
    ep = XtractEndpoint(dirs=[str(data)], local_mdata_path=str(out), funcx_ep_id=funcx_ep_id, credentials=credentials)
    state = xtract_endpoint(ep, extraction=ExtractionOptions(workers=2, **options), compute_settings=compute_settings,
                            return_state=True)
    assert state.is_completed(), state.message
    return state.result()


def docs_without_timings(out: pathlib.Path) -> dict[str, dict]:
    docs = {}
    for p in (out / "groups").glob("*.json"):
        doc = json.loads(p.read_text())
        for key in TIMING_FIELDS:
            doc.pop(key, None)
        docs[p.stem] = doc
    return docs


def test_dask_local_cluster_sized_to_machine(dask_pool):
    info = dask_pool.client.scheduler_info()
    workers = list(info["workers"].values())
    assert len(workers) == 2 and all(w["nthreads"] == 1 for w in workers)
    pids = dask_pool.client.run(os.getpid)
    assert len(set(pids.values())) == 2 and os.getpid() not in pids.values()  # processes, not threads


@pytest.mark.slow
def test_dask_and_compute_equivalent_to_process_pool(tmp_path, dask_pool, compute_loop):
    """The same tree through the process pool, Dask, and Globus Compute (the SDK's Executor, a real endpoint)."""
    data = tmp_path / "data"
    small_corpus(data)
    for i in range(6):
        write_csv(data / "more" / f"m{i}.csv", rows=5 + i)
    local = run_flow(data, tmp_path / "local")
    dask = run_flow(data, tmp_path / "dask", executor="dask", dask_address=dask_pool.cluster.scheduler_address)
    compute = run_flow(data, tmp_path / "compute", executor="globus-compute", compute_settings=GlobusComputeSettings(
        backend="sdk", registry_block=f"r-{uuid.uuid4().hex[:8]}"), funcx_ep_id=compute_loop.endpoint_id,
        credentials=compute_loop.credentials())
    frames = {}
    for name in ("local", "dask", "compute"):
        idx = check_contract(tmp_path / name, expected_files=12)
        frames[name] = idx.sort_values("path").reset_index(drop=True)
    pd.testing.assert_frame_equal(frames["local"], frames["dask"])
    pd.testing.assert_frame_equal(frames["local"], frames["compute"])
    assert docs_without_timings(tmp_path / "local") == docs_without_timings(tmp_path / "dask")
    assert docs_without_timings(tmp_path / "local") == docs_without_timings(tmp_path / "compute")
    for summary in (local, dask, compute):
        assert (summary["extracted"], summary["failed"]) == (local["extracted"], local["failed"]) == (10, 1)


def batches_seen(dask_scheduler) -> int:
    """Distinct run_batch tasks the scheduler has seen (runs on the scheduler)."""
    return len({str(t[0]) for t in dask_scheduler.transition_log if "run_batch" in str(t[0])})


def test_dask_cli_flag_reaches_the_cluster(tmp_path, dask_pool, capsys):
    small_corpus(tmp_path / "data")
    before = dask_pool.client.run_on_scheduler(batches_seen)
    code = cli_main(["run", str(tmp_path / "data"), "-o", str(tmp_path / "out"), "--executor", "dask",
                     "--dask-address", dask_pool.cluster.scheduler_address, "--json"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["extracted"] + summary["unknown"] + summary["failed"] == 6
    check_contract(tmp_path / "out", expected_files=6)
    assert dask_pool.client.run_on_scheduler(batches_seen) > before  # the batches ran on this cluster


@pytest.mark.slow
def test_dask_faults_dead_worker_and_batch_that_never_returns(tmp_path, dask_pool):
    """A worker that dies fails its task with KilledWorker and the cluster recovers; a file whose extraction
    never returns (an extractor stuck in a worker thread, where SIGALRM cannot reach) is caught by the run's
    deadline, the busy worker is restarted, the group is retried once and then recorded as a timeout."""
    fut = dask_pool.submit(os._exit, 1)
    with pytest.raises(KilledWorker):
        fut.result(timeout=120)

    # an installed extractor plugin (a zip on the workers' path, also for workers started later) that waits
    # an hour per file: what a read from a hung network file system looks like to the run
    site = pathlib.Path(write_plugin(str(tmp_path / "site")))
    module = site / "xtract_latency.py"
    module.write_text(module.read_text().replace('"0.05"', '"3600"'))
    bundle = tmp_path / "xtract_latency_stuck.zip"
    with zipfile.ZipFile(bundle, "w") as zf:
        for path in site.rglob("*"):
            zf.write(path, path.relative_to(site).as_posix())
    dask_pool.client.upload_file(str(bundle))
    dask_pool.client.run(reload_registry)

    ok = write_csv(tmp_path / "ok.csv")
    stuck = tmp_path / "stuck.lat"
    stuck.write_text("waits\n")

    def group(path: pathlib.Path, gid: str, ext: str) -> dict:
        st = path.stat()
        return {"group_id": gid, "fingerprint": gid, "endpoint": "t", "extractor": None,
                "files": [{"path": str(path), "size": st.st_size, "mtime": st.st_mtime, "extension": ext,
                           "mime": None, "extractor": None}]}

    out = tmp_path / "out"
    (out / "groups").mkdir(parents=True)
    state = StateStore(str(out / ".xtract"))
    try:
        run = ExtractionRun(dask_pool, state, "run", str(out), limit_s=1.0, max_retries=1, grace_s=2.0, poll_s=0.2)
        counters = run.run(make_batches(iter([group(ok, "ok", "csv"), group(stuck, "stuck", "lat")]),
                                        max_groups=1), max_in_flight=2)
    finally:
        state.close()
    docs = {p.stem: json.loads(p.read_text()) for p in (out / "groups").glob("*.json")}
    assert docs["ok"]["errors"] == [] and docs["ok"]["metadata"]["tabular"]["rows"] == 3
    assert docs["stuck"]["errors"][0]["type"] == "TimeoutError"
    assert counters.pool_restarts >= 1 and counters.fx_success == 1 and counters.fx_failed == 1
    assert dask_pool.submit(sum, [1, 2]).result(timeout=60) == 3  # the pool still works
