"""Reliability, round two (issue 21): failures stay visible and are retried, interrupts and a lost
Prefect API cost seconds, and no PATH argument breaks the output contract.

Real files, real worker pools, real CLI processes and (for the interrupt cases) the real Prefect
server an ``xtract run`` starts for itself.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator

import pandas as pd
import pytest

from tasks.crawl import crawl_to_spool
from tasks.group import group_spool, iter_groups
from tasks.habitats.local_crawl import LocalCrawler
from tasks.pools.base import PoolSpec
from tasks.pools.process import ProcessPool
from tasks.sink import finalize_metadata
from tasks.status import BackgroundPublisher
from tasks.store.journal import StateStore
from tasks.store.layout import MetadataDir
from tasks.xtract import ExtractionRun, make_batches, skip_done
from tests.conftest import REPO
from tests.helpers import check_contract, write_csv
from tests.reliability_plugin import PluginOnPath, fault_file, install_plugin
from xtract_blocks.roots import distinct_roots


@pytest.fixture
def plugin(tmp_path):
    with PluginOnPath(tmp_path / "plugin") as directory:
        yield directory


def extract_once(root: pathlib.Path, out: pathlib.Path, *, limit_s: float, retry_failed: bool = True,
                 memory_mb: int | None = 1024, between=None, after_crawl=None) -> tuple[ExtractionRun, dict]:
    """One run of crawl -> group -> extract -> index, as the flow does it, with retry_failed chosen."""
    layout = MetadataDir.of(str(out))
    crawl_to_spool(LocalCrawler(), [str(root)], layout.crawl_spool)
    if after_crawl is not None:
        after_crawl(layout.crawl_spool)
    group_spool(layout.crawl_spool, layout.groups_spool, "file_is_group")
    if between is not None:
        between()
    os.makedirs(layout.groups, exist_ok=True)
    run_id = uuid.uuid4().hex
    state = StateStore(layout.state)
    pool = ProcessPool(PoolSpec(workers=2, memory_limit_mb=memory_mb))
    try:
        run = ExtractionRun(pool, state, run_id, str(out), limit_s=limit_s, grace_s=3.0, poll_s=0.2)
        todo = skip_done(iter_groups(layout.groups_spool), state, run_id, run.counters, retry_failed=retry_failed)
        run.run(make_batches(todo, max_groups=2), max_in_flight=4)
    finally:
        pool.close()
        state.close()
    return run, finalize_metadata(str(out), run_id)


# -- 1. errors are never "done" ---------------------------------------------------------------

def test_a_rerun_retries_failures_and_skipped_means_succeeded_before(plugin, tmp_path):
    data = tmp_path / "data"
    slow = fault_file(data / "slow.fault", "sleep 1.5")
    bad = fault_file(data / "bad.fault", "raise")
    fine = [fault_file(data / f"ok{i}.fault", "ok") for i in range(3)]
    out = tmp_path / "out"

    run1, res1 = extract_once(data, out, limit_s=0.5)
    assert res1["counts"] == {"ok": 3, "error": 2}

    # a larger limit: the timed-out file is retried and passes, the broken one is retried and fails again
    run2, res2 = extract_once(data, out, limit_s=10)
    assert res2["counts"] == {"ok": 1, "error": 1, "skipped": 3}
    assert run2.counters.groups_skipped == 3 and run2.counters.cumu_pulled == 2
    idx = check_contract(out, expected_files=5).set_index("path")
    assert idx.loc[str(slow), "status"] == "ok"
    assert idx.loc[str(bad), "status"] == "error" and "bad on purpose" in idx.loc[str(bad), "error"]
    assert set(idx.loc[[str(f) for f in fine], "status"]) == {"skipped"}

    # --no-retry-failed: nothing is extracted, and the persistent failure is still an error, with its message
    run3, res3 = extract_once(data, out, limit_s=10, retry_failed=False)
    assert run3.counters.cumu_pulled == 0
    assert res3["counts"] == {"error": 1, "skipped": 4}
    idx = check_contract(out, expected_files=5).set_index("path")
    assert idx.loc[str(bad), "status"] == "error" and "bad on purpose" in idx.loc[str(bad), "error"]


# -- 6. no reading through a symlink that replaced a file ---------------------------------------

def test_a_file_replaced_by_a_symlink_after_the_crawl_is_not_read_through_it(tmp_path):
    data = tmp_path / "data"
    victim = write_csv(data / "table.csv")
    other = write_csv(data / "plain.csv")
    secret = tmp_path / "secret.csv"
    secret.write_text("user,password\nroot,SECRET-LINE-0123\n")

    def swap() -> None:
        victim.unlink()
        victim.symlink_to(secret)

    out = tmp_path / "out"
    _, res = extract_once(data, out, limit_s=10, between=swap)
    idx = check_contract(out, expected_files=2).set_index("path")
    assert idx.loc[str(victim), "status"] == "error"
    assert "changed after the crawl" in idx.loc[str(victim), "error"]
    assert idx.loc[str(other), "status"] == "ok"
    for g in (out / "groups").glob("*.json"):
        assert "SECRET-LINE" not in g.read_text()


def test_a_file_renamed_over_after_the_crawl_is_an_error_record_a_grown_one_is_described(tmp_path):
    """Same path, same size and mtime, another file (a rename over it): only the crawl's inode tells."""
    data = tmp_path / "data"
    victim = write_csv(data / "table.csv")
    grown = write_csv(data / "grown.csv")
    other = write_csv(data / "plain.csv")
    seen = victim.stat()

    def swap() -> None:
        replacement = tmp_path / "replacement.csv"
        replacement.write_bytes(victim.read_bytes())
        os.utime(replacement, ns=(seen.st_atime_ns, seen.st_mtime_ns))
        os.replace(replacement, victim)  # what an editor's or a sync tool's atomic save does
        with open(grown, "a") as fh:  # the same file, appended to: extracted as it is now
            fh.write("7,8,9\n")

    out = tmp_path / "out"
    _, res = extract_once(data, out, limit_s=10, between=swap)
    assert (victim.stat().st_size, victim.stat().st_mtime_ns) == (seen.st_size, seen.st_mtime_ns)
    idx = check_contract(out, expected_files=3).set_index("path")
    assert idx.loc[str(victim), "status"] == "error"
    assert "changed after the crawl: the path now names another file" in idx.loc[str(victim), "error"]
    assert idx.loc[str(grown), "status"] == "ok" and idx.loc[str(grown), "size"] == grown.stat().st_size
    assert idx.loc[str(other), "status"] == "ok"


def test_a_crawl_spool_from_before_inodes_still_extracts_without_the_check(tmp_path):
    """An old spool (no inode column, as crawls wrote it before) groups and extracts; no inode, no inode check."""
    import pyarrow.parquet as pq

    data = tmp_path / "data"
    victim = write_csv(data / "table.csv")
    write_csv(data / "plain.csv")

    def legacy(spool: str) -> None:
        table = pq.read_table(spool)
        assert table.column("inode").null_count == 0  # this crawl recorded them
        pq.write_table(table.drop_columns(["inode"]), spool)

    def swap() -> None:
        replacement = tmp_path / "replacement.csv"
        replacement.write_bytes(victim.read_bytes())
        os.replace(replacement, victim)

    out = tmp_path / "out"
    _, res = extract_once(data, out, limit_s=10, after_crawl=legacy, between=swap)
    groups = list(iter_groups(MetadataDir.of(str(out)).groups_spool))
    assert {f["inode"] for g in groups for f in g["files"]} == {None}
    idx = check_contract(out, expected_files=2)
    assert set(idx["status"]) == {"ok"}


def test_a_staged_remote_file_of_another_size_than_listed_is_an_error_record_naming_it(tmp_path):
    """Fetch staging (https, fsspec, habitat plugins): the copy must have the listing's size."""
    from extractors.batch import run_batch
    from tasks.habitats.download import Fetched, FetchStagingConfig
    from tasks.pools.fetch_staging import FetchStagingPool

    listed = b"a,b\n1,2\n"
    remote = {"mem://repo/same.csv": listed, "mem://repo/grew.csv": listed + b"3,4\n"}  # grew after the listing

    class Fetcher:
        def fetch(self, path: str, local: str, *, mtime: float | None = None, on_bytes=None) -> Fetched:
            with open(local, "wb") as fh:
                fh.write(remote[path])
            return Fetched(path, local, bytes=len(remote[path]))

    groups = [{"group_id": f"g{i}", "fingerprint": "f", "endpoint": "mem", "extractor": "tabular",
               "files": [{"path": path, "size": len(listed), "mtime": 1.7e9, "extension": "csv", "mime": "text/csv",
                          "extractor": "tabular", "inode": 12345}]}  # an inode from the listing's side: not checked
              for i, path in enumerate(remote)]
    config = FetchStagingConfig(habitat="mem", staging_dir=str(tmp_path / "staging"), fetcher_for=lambda r: Fetcher())
    pool = FetchStagingPool(ProcessPool(PoolSpec(workers=1)), config)
    try:
        results = pool.submit(run_batch, groups, out_dir=None, limit_s=30).result(timeout=300)
    finally:
        pool.close()
    outcome = {f["path"]: f for res in results for f in res["files"]}
    assert outcome["mem://repo/same.csv"]["status"] == "ok"
    grew = outcome["mem://repo/grew.csv"]
    assert grew["status"] == "error"
    assert grew["error"] == ("ChangedAfterCrawl: changed after the crawl: mem://repo/grew.csv has 12 bytes here, "
                             "the listing said 8"), grew["error"]
    doc = next(res["doc"] for res in results if res["group_id"] == "g1")
    assert doc["errors"][0]["path"] == "mem://repo/grew.csv"


# -- 9. a memory-cap kill says so -----------------------------------------------------------------

def test_the_memory_cap_is_named_in_the_error(plugin, tmp_path):
    data = tmp_path / "data"
    hog = fault_file(data / "hog.fault", "alloc")
    sparse = data / "huge.csv"
    with open(sparse, "wb") as fh:  # a header, then 1 GB of sparse NUL bytes on one line
        fh.write(b"a,b,c\n1,2,")
        fh.truncate(1024**3)
    out = tmp_path / "out"
    _, res = extract_once(data, out, limit_s=60, memory_mb=384)
    idx = check_contract(out, expected_files=2).set_index("path")
    for path in (hog, sparse):
        assert idx.loc[str(path), "status"] == "error"
        assert "exceeded the worker memory limit of 384 MB" in idx.loc[str(path), "error"], idx.loc[str(path), "error"]


# -- 3. status publishing never blocks the caller -------------------------------------------------

def test_background_publisher_never_blocks_and_keeps_only_the_newest_update():
    release, stuck = threading.Event(), threading.Event()
    sent: list[int] = []

    def job(n: int):
        def send() -> None:
            if n == 0:
                stuck.set()
                release.wait(10)  # an API that does not answer
            sent.append(n)
        return send

    pub = BackgroundPublisher("test-status")
    pub.submit(job(0))
    assert stuck.wait(5)
    started = time.monotonic()
    for n in range(1, 200):
        pub.submit(job(n))
    assert time.monotonic() - started < 0.5  # the caller never waited for the stuck "API"
    assert not pub.close(timeout_s=0.3)  # still stuck: close gives up, counted as not reported
    release.set()
    time.sleep(0.2)
    assert sent == [0]  # the superseded updates were never sent; nothing ran after close

    pub = BackgroundPublisher("test-status-2")
    for n in range(5):
        pub.submit(job(n + 1))
    assert pub.close(timeout_s=5)
    assert sent[-1] == 5


# -- 5. PATHs normalized and de-duplicated --------------------------------------------------------

def test_distinct_roots_drops_repeats_nested_paths_and_links_into_a_root(tmp_path):
    t = tmp_path / "t"
    write_csv(t / "f1.csv")
    (t / "sub").mkdir()
    (tmp_path / "link").symlink_to(t / "sub")
    other = tmp_path / "other"
    other.mkdir()
    kept, dropped = distinct_roots([str(t), str(t / "f1.csv"), f"{t}/", str(tmp_path / "link"), str(other),
                                    str(t / "sub" / ".." / "f1.csv")])
    assert kept == [str(t), str(other)]
    assert [d for d, _ in dropped] == [str(t / "f1.csv"), str(t), str(tmp_path / "link"), str(t / "f1.csv")]


def deep_tree(root: pathlib.Path, levels: int = 30) -> None:
    """Nested directories whose path outgrows PATH_MAX (4096): built relative to a directory fd."""
    root.mkdir(parents=True)
    fd = os.open(root, os.O_RDONLY)
    try:
        for _ in range(levels):
            name = "d" * 200
            os.mkdir(name, dir_fd=fd)
            nfd = os.open(name, os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = nfd
        leaf = os.open("lost.csv", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
        os.write(leaf, b"a,b\n1,2\n")
        os.close(leaf)
    finally:
        os.close(fd)


@pytest.mark.slow
def test_cli_paths_counted_once_big_directories_split_deep_trees_counted(tmp_path, xtract_bin, subprocess_env):
    """Repeated and nested PATHs, a 2,500-file directory grouped by directory, a tree below PATH_MAX."""
    t = tmp_path / "t"
    f1 = write_csv(t / "f1.csv")
    big = t / "big"
    big.mkdir()
    for i in range(2500):
        (big / f"r{i:04d}.txt").write_text(f"row {i}\n")
    deep_tree(t / "deep")
    out = tmp_path / "out"
    cmd = [*xtract_bin, "run", str(t), str(f1), f"{t}/", str(t / "big"), "-o", str(out), "--grouper", "directory",
           "--workers", "10000", "--json", "-q"]
    res = subprocess.run(cmd, env=subprocess_env, capture_output=True, text=True, timeout=400, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    assert summary["files_crawled"] == 2501
    assert summary["dirs_failed"] >= 1  # the directory whose path is longer than PATH_MAX
    assert "directories could not be listed" in res.stdout
    assert "already covered by" in res.stderr and "is more than this machine can use" in res.stderr
    idx = check_contract(out, expected_files=2501)
    big_groups = idx[idx["path"].str.startswith(str(big) + "/")]["group_id"].nunique()
    assert big_groups >= 3  # split at 1,000 files per group


def test_cli_refuses_paths_that_are_not_files_or_directories_and_oversized_batches(tmp_path, xtract_bin,
                                                                                  subprocess_env):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    res = subprocess.run([*xtract_bin, "run", str(fifo), "-o", str(tmp_path / "out")], env=subprocess_env,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 2
    assert res.stderr.strip() == f"xtract: error: path is not a directory or a regular file: {fifo} (a FIFO)"
    one = write_csv(tmp_path / "d" / "a.csv")
    res = subprocess.run([*xtract_bin, "run", str(tmp_path / "d"), "-o", str(tmp_path / "out"), "--batch-size",
                          "1000000"], env=subprocess_env, capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "--batch-size 1000000 is above the limit" in res.stderr
    # a regular file as PATH is a one-file crawl
    res = subprocess.run([*xtract_bin, "run", str(one), "-o", str(tmp_path / "out"), "--json", "-q"],
                         env=subprocess_env, capture_output=True, text=True, timeout=400)
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    assert (summary["files_crawled"], summary["extracted"]) == (1, 1)
    check_contract(tmp_path / "out", expected_files=1)


# -- 2. interrupts ----------------------------------------------------------------------------------

def slow_tree(root: pathlib.Path, n: int = 60) -> None:
    for i in range(n):
        fault_file(root / f"s{i:03d}.fault", "sleep 0.3")


def journalled(out: pathlib.Path) -> int:
    import sqlite3

    try:
        db = sqlite3.connect(f"file:{out / '.xtract' / 'state.sqlite'}?mode=ro", uri=True, timeout=1)
        try:
            return db.execute("SELECT count(*) FROM groups").fetchone()[0]
        finally:
            db.close()
    except sqlite3.Error:
        return 0


def wait_for(predicate, timeout_s: float, proc: subprocess.Popen | None = None) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        if proc is not None and proc.poll() is not None:
            return False
        time.sleep(0.1)
    return False


def own_server_env(tmp_path: pathlib.Path, subprocess_env: dict[str, str], plugin_dir: pathlib.Path) -> dict:
    """No PREFECT_API_URL: the run starts (and must stop) a Prefect server of its own, in tmp_path."""
    env = {k: v for k, v in subprocess_env.items() if k != "PREFECT_API_URL"}
    env["PREFECT_HOME"] = str(tmp_path / "prefect-home")
    env["PYTHONPATH"] = f"{REPO}{os.pathsep}{plugin_dir}"
    return env


def children(pid: int) -> list[tuple[int, str]]:
    """(pid, command line) of the direct children of ``pid``, from /proc."""
    found = []
    for entry in pathlib.Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat_fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(stat_fields[1]) == pid:
                found.append((int(entry.name), (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()))
        except (OSError, IndexError, ValueError):
            continue
    return found


def server_pid(pid: int) -> int | None:
    return next((c for c, cmd in children(pid) if "uvicorn" in cmd and "prefect.server" in cmd), None)


@contextlib.contextmanager
def run_under_way(cmd: list[str], env: dict[str, str], cwd: pathlib.Path, out: pathlib.Path
                  ) -> Iterator[subprocess.Popen]:
    """``xtract run`` in a session of its own, once 4 groups are journalled; SIGKILLed (all of it) if still running."""
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, start_new_session=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert wait_for(lambda: journalled(out) >= 4, 240, proc), proc.communicate()
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


@pytest.mark.slow
def test_ctrl_c_to_the_process_group_ends_the_run_in_seconds_and_the_rerun_resumes(tmp_path, xtract_bin,
                                                                                   subprocess_env):
    plugin_dir = install_plugin(tmp_path / "plugin")
    env = own_server_env(tmp_path, subprocess_env, plugin_dir)
    data = tmp_path / "data"
    slow_tree(data)
    out = tmp_path / "out"
    cmd = [*xtract_bin, "run", str(data), "-o", str(out), "--workers", "2", "--batch-size", "2", "-q"]
    with run_under_way(cmd, env, tmp_path, out) as proc:
        server = server_pid(proc.pid)
        assert server is not None
        started = time.monotonic()
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        _, err = proc.communicate(timeout=60)
        took = time.monotonic() - started
    assert proc.returncode == 130, err
    assert took < 15, took
    assert err.strip().splitlines()[-1] == "xtract: interrupted; rerun the same command to resume"
    assert "Traceback" not in err and "ConnectError" not in err
    assert wait_for(lambda: not pathlib.Path(f"/proc/{server}").exists(), 10)  # the run stopped its server
    done_before = journalled(out)
    assert 0 < done_before < 60

    res = subprocess.run([*cmd, "--json"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=400)
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    assert summary["skipped"] >= done_before - 4  # at most the batches in flight were redone
    assert summary["extracted"] + summary["skipped"] == 60
    check_contract(out, expected_files=60)


@pytest.mark.slow
def test_sigterm_ends_the_run_with_143_and_a_consistent_journal(tmp_path, xtract_bin, subprocess_env):
    plugin_dir = install_plugin(tmp_path / "plugin")
    env = {**subprocess_env, "PYTHONPATH": f"{REPO}{os.pathsep}{plugin_dir}"}
    data = tmp_path / "data"
    slow_tree(data)
    out = tmp_path / "out"
    cmd = [*xtract_bin, "run", str(data), "-o", str(out), "--workers", "2", "--batch-size", "2", "-q"]
    with run_under_way(cmd, env, tmp_path, out) as proc:
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        took = time.monotonic() - started
    assert proc.returncode == 143, err
    assert took < 15, took
    assert err.strip().splitlines()[-1] == "xtract: terminated; rerun the same command to resume"
    res = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=400)
    assert res.returncode == 0, res.stderr
    check_contract(out, expected_files=60)


# -- 3. a Prefect server lost mid-run ----------------------------------------------------------------

@pytest.mark.slow
def test_a_server_killed_mid_run_costs_the_metadata_nothing(tmp_path, xtract_bin, subprocess_env):
    plugin_dir = install_plugin(tmp_path / "plugin")
    env = own_server_env(tmp_path, subprocess_env, plugin_dir)
    data = tmp_path / "data"
    slow_tree(data)
    out = tmp_path / "out"
    cmd = [*xtract_bin, "run", str(data), "-o", str(out), "--workers", "2", "--batch-size", "2", "--json", "-q"]
    with run_under_way(cmd, env, tmp_path, out) as proc:
        server = server_pid(proc.pid)
        assert server is not None
        os.kill(server, signal.SIGKILL)
        outs, err = proc.communicate(timeout=300)
    assert proc.returncode == 3, err
    assert "the metadata is complete" in err and "Traceback" not in err
    summary = json.loads(outs.strip().splitlines()[-1])
    assert summary["extracted"] == 60
    idx = check_contract(out, expected_files=60)
    assert set(idx["status"]) == {"ok"}
    assert isinstance(pd.read_parquet(out / "index.parquet"), pd.DataFrame)


@contextlib.contextmanager
def external_server(home: pathlib.Path) -> Iterator[tuple[subprocess.Popen, str]]:
    """A ``prefect server start`` of the test's own (its own session, PREFECT_HOME in tmp): (process, API URL)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/api"
    env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "PREFECT_API_KEY")}
    env.update({"PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1",
                "PREFECT_SERVER_UI_ENABLED": "false"})
    home.mkdir(parents=True, exist_ok=True)
    with open(home / "server.log", "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port",
                                 str(port)], env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    try:
        def answers() -> bool:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2):
                    return True
            except OSError:
                return False

        assert wait_for(answers, 120, proc), (home / "server.log").read_text()[-3000:]  # DESIGN.md: up to ~20 s
        yield proc, url
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


@pytest.mark.slow
def test_an_external_server_lost_mid_run_ends_the_run_seconds_after_the_extraction(tmp_path, xtract_bin,
                                                                                  subprocess_env):
    """PREFECT_API_URL set by the user, its server killed mid-run and never back: no minutes of client retries."""
    plugin_dir = install_plugin(tmp_path / "plugin")
    data = tmp_path / "data"
    slow_tree(data)
    out = tmp_path / "out"
    with external_server(tmp_path / "prefect-home") as (server, url):
        env = {**subprocess_env, "PREFECT_API_URL": url, "PYTHONPATH": f"{REPO}{os.pathsep}{plugin_dir}"}
        cmd = [*xtract_bin, "run", str(data), "-o", str(out), "--workers", "2", "--batch-size", "2", "--json", "-q"]
        with run_under_way(cmd, env, tmp_path, out) as proc:
            os.killpg(server.pid, signal.SIGKILL)  # the server and its children: gone for good
            server.wait(10)
            killed = time.monotonic()
            outs, err = proc.communicate(timeout=300)
            took = time.monotonic() - killed
    assert proc.returncode == 3, err
    warnings = [line for line in err.splitlines() if line.startswith("xtract: warning:")]
    assert len(warnings) == 1 and "status could not be reported" in warnings[0], err
    assert "the metadata is complete" in warnings[0]
    assert "Traceback" not in err and "Error logging to API" not in err, err
    # 56 groups of 0.3 s on 2 workers remain at the kill (~9 s); the run then ends in seconds, not Prefect's
    # minute and a half of retries of its final state
    assert took < 45, took
    summary = json.loads(outs.strip().splitlines()[-1])
    assert summary["extracted"] == 60
    idx = check_contract(out, expected_files=60)
    assert set(idx["status"]) == {"ok"}


# -- 4. resource bounds in flow runs (the UI, deployments) -------------------------------------------

def test_workers_are_clamped_to_this_machine_but_remote_engines_size_themselves():
    from tasks.pools.options import MAX_WORKERS_PER_CORE, max_local_workers
    from tasks.pools.plan import bounded_workers

    limit = max_local_workers()
    assert 1 <= limit <= MAX_WORKERS_PER_CORE * (os.cpu_count() or 1)
    assert bounded_workers(10_000) == limit and bounded_workers(10_000, "dask") == limit
    assert bounded_workers(1) == 1 and bounded_workers(None) is None
    assert bounded_workers(10_000, "globus-compute") == 10_000
    assert bounded_workers(10_000, "dask", "tcp://scheduler:8786") == 10_000
