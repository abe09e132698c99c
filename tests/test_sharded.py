"""One endpoint over Prefect's own workers: a real server, a process work pool, `prefect worker` processes,
shards as flow runs, one merged metadata directory (every file once). A worker killed mid-shard: that shard
runs again and the index still holds every file once."""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import sys
import time
import uuid

import pytest

from bench.latency_plugin import write_plugin, write_tree
from tests.conftest import REPO
from tests.helpers import VALIDATE, check_contract

PREFECT = [sys.executable, "-m", "prefect"]


@pytest.fixture
def env(tmp_path, subprocess_env, monkeypatch) -> dict[str, str]:
    """Workers, shard runs and this process all see the latency extractor."""
    site = write_plugin(str(tmp_path / "site"))
    monkeypatch.syspath_prepend(site)
    monkeypatch.setenv("XTRACT_LATENCY_S", "0.02")
    from extractors.registry import reload_registry

    reload_registry()
    yield {**subprocess_env, "PYTHONPATH": os.pathsep.join([site, str(REPO)]), "XTRACT_LATENCY_S": "0.02",
           "PREFECT_WORKER_QUERY_SECONDS": "1", "PREFECT_WORKER_PREFETCH_SECONDS": "1"}
    reload_registry()


def start_worker(pool: str, env: dict[str, str], log: pathlib.Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([*PREFECT, "worker", "start", "--pool", pool, "--type", "process", *extra], env=env,
                            cwd=REPO, stdout=open(log, "wb"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True)


def descendants(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout.split()
    return [int(c) for c in out] + [g for c in out for g in descendants(int(c))]


def kill_tree(proc: subprocess.Popen) -> None:
    """The worker and every process it started (the shard's flow run): a machine that went away."""
    for pid in [*descendants(proc.pid), proc.pid]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait(timeout=30)


def run_sharded(data: pathlib.Path, out: pathlib.Path, pool: str, **kwargs):
    from flows.sharded_flow import xtract_sharded
    from tasks.pools.options import ExtractionOptions
    from xtract_blocks import XtractEndpoint

    ep = XtractEndpoint(dirs=[str(data)], local_mdata_path=str(out))
    return xtract_sharded(ep, work_pool=pool, extraction=ExtractionOptions(workers=1), return_state=True, **kwargs)


def shard_runs(summary: dict) -> list:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return [client.read_flow_run(uuid.UUID(i)) for i in summary["shard_runs"].values()]


@pytest.mark.slow
def test_four_shards_on_two_workers_merge_into_one_valid_out(tmp_path, env):
    files = write_tree(str(tmp_path / "data"), 600, per_dir=50)
    pool = f"pool-{uuid.uuid4().hex[:8]}"
    workers = [start_worker(pool, env, tmp_path / f"worker-{i}.log") for i in range(2)]
    try:
        state = run_sharded(tmp_path / "data", tmp_path / "out", pool, shards=4, stall_timeout_s=120)
    finally:
        for w in workers:
            kill_tree(w)
    logs = "".join((tmp_path / f"worker-{i}.log").read_text(errors="replace")[-2000:] for i in range(2))
    assert state.is_completed(), f"{state.message}\n{logs}"
    summary = state.result()
    assert summary["shards"] == 4 and summary["files_crawled"] == files and summary["extracted"] == files
    runs = shard_runs(summary)
    assert [r.state.type.value for r in runs] == ["COMPLETED"] * 4
    assert all(r.parent_task_run_id is not None for r in runs), "shard runs are children of the parent run"
    idx = check_contract(tmp_path / "out", expected_files=files)
    assert sorted(os.listdir(tmp_path / "out" / "index.parquet")) == [f"shard-00{k}" for k in range(4)]
    assert idx["path"].is_unique
    check = subprocess.run([*VALIDATE, str(tmp_path / "out"), "--files", str(files)], capture_output=True,
                           text=True, timeout=120)
    assert check.returncode == 0, check.stderr


@pytest.mark.slow
def test_worker_killed_mid_shard_the_shard_runs_again(tmp_path, env):
    files = write_tree(str(tmp_path / "data"), 800, per_dir=50)
    pool = f"pool-{uuid.uuid4().hex[:8]}"
    out = tmp_path / "out"
    first = start_worker(pool, env, tmp_path / "worker-a.log", "--limit", "1")
    later: list[subprocess.Popen] = []

    def chaos() -> None:
        """Kill the first worker once its shard is writing documents, then bring another worker."""
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            shards = out / ".xtract" / "shards"
            if shards.is_dir() and any(len(list(p.glob("groups/*.json"))) >= 20 for p in shards.iterdir()):
                kill_tree(first)
                later.append(start_worker(pool, env, tmp_path / "worker-b.log"))
                return
            time.sleep(0.2)

    import threading

    killer = threading.Thread(target=chaos, daemon=True)
    killer.start()
    try:
        state = run_sharded(tmp_path / "data", out, pool, shards=2, stall_timeout_s=15)
    finally:
        killer.join(timeout=5)
        for w in [first, *later]:
            if w.poll() is None:
                kill_tree(w)
    assert later, "the first worker never started a shard"
    assert state.is_completed(), state.message
    summary = state.result()
    assert max(summary["shard_attempts"].values()) == 2, summary["shard_attempts"]  # the lost shard ran again
    assert summary["extracted"] + summary["skipped"] == files and summary["failed"] == 0, summary
    check_contract(out, expected_files=files)


def test_shards_need_a_shared_prefect_server(tmp_path, subprocess_env):
    """--shards without PREFECT_API_URL: one line before any work (the workers could not reach a server of ours)."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.txt").write_text("x")
    env = {k: v for k, v in subprocess_env.items() if k != "PREFECT_API_URL"}
    env["PREFECT_HOME"] = str(tmp_path / "prefect-home")
    res = subprocess.run([sys.executable, "-m", "flows.cli", "run", str(tmp_path / "data"), "-o", str(tmp_path / "out"),
                          "--shards", "2"], env=env, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and "PREFECT_API_URL" in res.stderr, res.stderr
    assert not (tmp_path / "out" / "index.parquet").exists()
