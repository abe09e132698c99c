"""Dask on a real cluster: `dask scheduler` and two `dask worker` processes started from the CLI on loopback,
and `xtract run --executor dask --dask-address` as a user runs it. A worker killed mid-run loses nothing; a
scheduler that goes away fails the run clearly, and the rerun on a new cluster resumes."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import time

import pytest

from bench.latency_plugin import write_plugin, write_tree
from tests.dask_cluster import REPO, start_cluster
from tests.helpers import VALIDATE

pytestmark = pytest.mark.slow
FILES = 400


@pytest.fixture
def env(tmp_path, subprocess_env) -> dict[str, str]:
    """The flow process and every worker see the latency extractor (0.05 s a file, not CPU-bound)."""
    site = write_plugin(str(tmp_path / "site"))
    return {**subprocess_env, "PYTHONPATH": os.pathsep.join([site, str(REPO)]), "XTRACT_LATENCY_S": "0.05"}


def start_run(data: pathlib.Path, out: pathlib.Path, address: str, env: dict[str, str]) -> subprocess.Popen:
    """A run whose files are due within 20 s each (a hung batch is noticed at its deadline)."""
    return subprocess.Popen([sys.executable, "-m", "flows.cli", "run", str(data), "-o", str(out), "--executor",
                             "dask", "--dask-address", address, "--batch-size", "10", "--time-limit", "20",
                             "--json", "--quiet"],
                            env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_documents(out: pathlib.Path, n: int, proc: subprocess.Popen, timeout_s: float = 180) -> None:
    """Until ``n`` group documents are written: the run is well under way."""
    deadline = time.monotonic() + timeout_s
    while len(list((out / "groups").glob("*.json"))) < n:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the run made no progress"
        time.sleep(0.2)


def test_worker_killed_mid_run_loses_nothing(tmp_path, env):
    write_tree(str(tmp_path / "data"), FILES)
    cluster = start_cluster(env, tmp_path / "logs")
    out = tmp_path / "out"
    try:
        proc = start_run(tmp_path / "data", out, cluster.address, env)
        wait_for_documents(out, 60, proc)
        cluster.kill(cluster.workers[0])
        stdout, stderr = proc.communicate(timeout=600)
    finally:
        cluster.stop()
    assert proc.returncode == 0, stderr[-3000:] + cluster.logs()
    summary = json.loads(stdout.strip().splitlines()[-1])
    assert summary["files_crawled"] == FILES and summary["extracted"] == FILES and summary["failed"] == 0, summary
    check = subprocess.run([*VALIDATE, str(out), "--files", str(FILES)], capture_output=True, text=True, timeout=120)
    assert check.returncode == 0, check.stderr


def test_scheduler_lost_fails_clearly_and_the_rerun_resumes(tmp_path, env):
    write_tree(str(tmp_path / "data"), FILES)
    out = tmp_path / "out"
    first = start_cluster(env, tmp_path / "logs-1")
    try:
        proc = start_run(tmp_path / "data", out, first.address, env)
        wait_for_documents(out, 60, proc)
        assert first.scheduler is not None
        first.kill(first.scheduler)
        started = time.monotonic()
        _, stderr = proc.communicate(timeout=600)
        lost_after_s = time.monotonic() - started
    finally:
        first.stop()
    assert proc.returncode not in (0, None), "a run whose scheduler went away cannot say it completed"
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("xtract:") and "Traceback" not in stderr[-2000:], stderr[-3000:]
    print(f"\nscheduler lost: the run ended {lost_after_s:.1f}s later: {last}")
    # the pool watches its scheduler (a look every 2 s, three misses): not the client's 30 s reconnect
    # timeout, nor the batch deadline (2 x 20 s x 10 files)
    assert lost_after_s < 30, lost_after_s
    done_before = len(list((out / "groups").glob("*.json")))

    second = start_cluster(env, tmp_path / "logs-2")
    try:
        again = start_run(tmp_path / "data", out, second.address, env)
        stdout, stderr = again.communicate(timeout=600)
    finally:
        second.stop()
    assert again.returncode == 0, stderr[-3000:]
    summary = json.loads(stdout.strip().splitlines()[-1])
    assert 0 < summary["skipped"] <= done_before, (summary, done_before)  # the rerun resumed: journalled groups skip
    assert summary["extracted"] + summary["skipped"] == FILES and summary["failed"] == 0, summary
    check = subprocess.run([*VALIDATE, str(out), "--files", str(FILES)], capture_output=True, text=True, timeout=120)
    assert check.returncode == 0, check.stderr
