"""Faults inside extraction: dying, crashing, hanging and hoarding workers; files that move.

Each test runs the real pipeline pieces (crawl spool, groups spool, a spawned
process pool with the worker limits, the SQLite journal, the sink) and checks
"nothing lost, nothing duplicated" with check_contract: every crawled file is in
index.parquet exactly once and in exactly one group file.
"""

from __future__ import annotations

import os
import time

import pytest

from extractors.batch import extract_group
from tests.helpers import check_contract, load_group, write_csv
from tests.reliability_plugin import PluginOnPath, fault_file, run_pipeline


@pytest.fixture
def plugin(tmp_path):
    with PluginOnPath(tmp_path / "plugin") as path:
        yield path


def outcomes(idx):
    return dict(zip(idx["path"], zip(idx["status"], idx["error"], strict=True), strict=True))


@pytest.mark.slow
def test_killed_segfaulting_hanging_and_hoarding_workers_cost_only_their_group(plugin, tmp_path):
    data = tmp_path / "data"
    ok = [fault_file(data / f"ok{i:02d}.fault", "ok") for i in range(14)]
    bad = {
        "kill": fault_file(data / "kill.fault", "kill"),
        "kill-once": fault_file(data / "kill_once.fault", f"kill-once {tmp_path / 'marker'}"),
        "segv": fault_file(data / "segv.fault", "segv"),
        "sleep": fault_file(data / "sleep.fault", "sleep 60"),
        "hang-hard": fault_file(data / "hang_hard.fault", "hang-hard"),
        "alloc": fault_file(data / "alloc.fault", "alloc"),
        "raise": fault_file(data / "raise.fault", "raise"),
    }
    out = tmp_path / "out"
    started = time.monotonic()
    run, sunk = run_pipeline(data, out, workers=2, batch=3, limit_s=3.0, memory_mb=512, grace_s=2.0)
    elapsed = time.monotonic() - started
    idx = check_contract(out, expected_files=len(ok) + len(bad))
    got = outcomes(idx)
    for path in ok:  # innocent bystanders of every crash are extracted, not failed
        assert got[str(path)][0] == "ok", got[str(path)]
    assert got[str(bad["kill-once"])][0] == "ok"  # a transient death is retried and succeeds
    assert got[str(bad["kill"])][0] == "error" and got[str(bad["kill"])][1].startswith("WorkerDied")
    assert got[str(bad["segv"])][0] == "error" and got[str(bad["segv"])][1].startswith("WorkerDied")
    assert got[str(bad["sleep"])][0] == "error" and "time limit" in got[str(bad["sleep"])][1]
    assert got[str(bad["hang-hard"])][0] == "error" and "worker hung" in got[str(bad["hang-hard"])][1]
    assert got[str(bad["alloc"])][0] == "error" and got[str(bad["alloc"])][1].startswith("MemoryError")
    assert got[str(bad["raise"])][0] == "error" and "bad on purpose" in got[str(bad["raise"])][1]
    assert run.counters.pool_restarts >= 3 and run.counters.fx_pending == 0
    assert sunk["index_rows"] == len(ok) + len(bad)
    assert elapsed < 150
    doc = load_group(out, idx, bad["kill"])
    assert doc["errors"][0]["type"] == "WorkerDied"


@pytest.mark.slow
def test_repeated_worker_deaths_never_fail_innocent_groups(plugin, tmp_path):
    """Three killers spread over many batches: only they become error records."""
    data = tmp_path / "data"
    ok = [fault_file(data / f"f{i:02d}.fault", "ok") for i in range(30)]
    killers = [fault_file(data / f"f{i:02d}x.fault", "kill") for i in (3, 12, 25)]
    out = tmp_path / "out"
    run, _ = run_pipeline(data, out, workers=2, batch=4, limit_s=5.0, grace_s=2.0)
    idx = check_contract(out, expected_files=33)
    got = outcomes(idx)
    assert [p for p in ok if got[str(p)][0] != "ok"] == []
    assert all(got[str(k)][0] == "error" for k in killers)
    assert run.counters.files_error == 3 and run.counters.files_ok == 30


def test_files_changing_or_vanishing_after_the_crawl(tmp_path):
    data = tmp_path / "data"
    grows = write_csv(data / "grows.csv", rows=3)
    gone = write_csv(data / "gone.csv", rows=3)
    steady = write_csv(data / "steady.csv", rows=4)
    out = tmp_path / "out"

    def change() -> None:
        write_csv(grows, rows=50)
        os.utime(grows, (time.time() + 10, time.time() + 10))
        gone.unlink()

    run_pipeline(data, out, workers=1, batch=10, between=change)
    idx = check_contract(out, expected_files=3)
    got = idx.set_index("path")
    now = os.stat(grows)
    assert got.loc[str(grows), "status"] == "ok"
    assert got.loc[str(grows), "size"] == now.st_size and got.loc[str(grows), "mtime"] == now.st_mtime
    assert load_group(out, idx, grows)["metadata"]["tabular"]["rows"] == 50  # described as it is now
    assert got.loc[str(gone), "status"] == "error"
    assert "vanished after the crawl" in got.loc[str(gone), "error"]
    assert got.loc[str(steady), "status"] == "ok"


def test_time_limit_is_per_file_and_keeps_the_other_members(plugin, tmp_path):
    """A group of three where the second hangs: it times out alone (the limit is per file), first and third ok."""
    files = [fault_file(tmp_path / "g" / n, b) for n, b in (("a.fault", "ok"), ("b.fault", "sleep 30"),
                                                              ("c.fault", "ok"))]
    group = {"group_id": "g1", "fingerprint": "x", "endpoint": "local",
             "files": [{"path": str(f), "size": f.stat().st_size, "mtime": f.stat().st_mtime,
                        "extension": "fault", "mime": None, "extractor": "fault"} for f in files]}
    started = time.monotonic()
    res = extract_group(group, limit_s=0.5)
    assert time.monotonic() - started < 5
    assert [f["status"] for f in res["files"]] == ["ok", "error", "ok"]
    assert len(res["doc"]["errors"]) == 1 and {e["type"] for e in res["doc"]["errors"]} == {"TimeoutError"}
    assert list(res["doc"]["metadata"]["fault"]["members"]) == [str(files[0]), str(files[2])]
