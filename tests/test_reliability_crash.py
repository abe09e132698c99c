"""The whole flow process killed mid-run (SIGKILL), then rerun: resume, every file exactly once."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import time

import pytest

from tests.conftest import REPO
from tests.helpers import check_contract
from tests.reliability_plugin import fault_file, install_plugin

FILES = 40


def journalled_groups(journal: str) -> int:
    """Groups the running flow has committed, read without disturbing it (read-only, WAL)."""
    try:
        db = sqlite3.connect(f"file:{journal}?mode=ro", uri=True, timeout=1)
        try:
            return db.execute("SELECT count(*) FROM groups").fetchone()[0]
        finally:
            db.close()
    except sqlite3.Error:
        return 0


def complete_group_files(out) -> int:
    """Every visible group file parses as a whole document (atomic rename, never a torn write)."""
    n = 0
    for g in (out / "groups").iterdir():
        if g.name.startswith(".tmp-"):
            continue  # invisible by contract: swept on the next run
        doc = json.loads(g.read_text())
        assert doc["group_id"] == g.stem
        n += 1
    return n


@pytest.mark.slow
def test_flow_killed_mid_run_resumes_and_indexes_every_file_once(tmp_path, xtract_bin, subprocess_env):
    plugin_dir = install_plugin(tmp_path / "plugin")
    env = {**subprocess_env, "PYTHONPATH": f"{REPO}{os.pathsep}{plugin_dir}"}
    data = tmp_path / "data"
    for i in range(FILES):
        fault_file(data / f"slow{i:02d}.fault", "sleep 0.4")
    out = tmp_path / "out"
    cmd = [*xtract_bin, "run", str(data), "-o", str(out), "--workers", "2", "--batch-size", "2", "--json"]
    proc = subprocess.Popen(cmd, env=env, cwd=tmp_path, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    journal = str(out / ".xtract" / "state.sqlite")
    try:
        deadline = time.monotonic() + 240
        while proc.poll() is None and time.monotonic() < deadline:
            if journalled_groups(journal) >= 6:
                break
            time.sleep(0.1)
        assert proc.poll() is None, "the run ended before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)  # the flow process only, as the OOM killer would
        proc.wait(timeout=30)
        done_at_kill = journalled_groups(journal)
        assert 6 <= done_at_kill < FILES
        assert complete_group_files(out) >= done_at_kill
        assert not (out / "index.parquet").exists()  # the sink never ran; nothing half-made is published
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # orphaned pool workers of the killed flow, if any
        except ProcessLookupError:
            pass
    rerun = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=400)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    summary = json.loads(rerun.stdout.strip().splitlines()[-1])
    idx = check_contract(out, expected_files=FILES)
    assert set(idx["status"]) <= {"ok", "skipped"}
    assert summary["skipped"] >= done_at_kill and summary["skipped"] + summary["extracted"] == FILES
    assert not [p for p in (out / "groups").iterdir() if p.name.startswith(".tmp-")]
    assert not list(out.glob("*.partial"))
