"""Endpoints sharing a metadata directory: identity, per-endpoint journal scope, the state lock,
the flush queue across processes, exclusion at crawl time, the seed's short scope names."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tasks.crawl import crawl_to_spool
from tasks.crawl_filter import CrawlFilter
from tasks.habitats.local_crawl import LocalCrawler
from tasks.store.flush_queue import FlushQueue
from tasks.store.journal import StateStore
from tasks.store.layout import MetadataDir
from tasks.store.records import iter_spool
from tasks.store.state_lock import StateLocked, state_lock
from xtract_blocks import GlobusCredentials, XtractEndpoint
from xtract_blocks.errors import ConfigurationError, MetadataDirError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_identity_covers_compute_and_metadata_dir_and_names_are_readable(tmp_path):
    base = {"dirs": [str(tmp_path / "Run 1" / "")], "local_mdata_path": str(tmp_path / "m")}
    a = XtractEndpoint(**base)
    assert a.slug().startswith("run-1-") and len(a.slug()) == len("run-1-") + 10
    others = [XtractEndpoint(**base, funcx_ep_id="f1"), XtractEndpoint(**{**base, "local_mdata_path": str(tmp_path)}),
              XtractEndpoint(**{**base, "dirs": [str(tmp_path / "Run 2")]}),
              XtractEndpoint(**base, repo_type="globus", globus_ep_id="g")]
    assert len({a.slug(), *[o.slug() for o in others]}) == 5
    # how the same files are crawled is not identity: a rerun replaces, never doubles, the metadata
    assert XtractEndpoint(**base, grouper="directory", exclude=[".git"]).slug() == a.slug()
    # case-insensitive repo_type (the seed lower-cased it)
    assert XtractEndpoint(repo_type="Globus", globus_ep_id="g", dirs=["/x"]).repo_type == "globus"


def test_journal_forgets_only_its_own_endpoints_groups(tmp_path):
    state_dir = str(tmp_path / ".xtract")

    def rec(endpoint: str, run: str, gid: str, path: str) -> None:
        store = StateStore(state_dir, endpoint)
        store.record([{"group_id": gid, "fingerprint": "f", "extractor": "x", "files": [
            {"path": path, "size": 1, "mtime": 0.0, "extension": "csv", "mime": None, "extractor": "x",
             "status": "ok", "error": None}]}], run)
        store.close()

    rec("a", "run-a1", "ga", "/d/a.csv")
    rec("b", "run-b1", "gb", "/d/b.csv")
    a = StateStore(state_dir, "a")
    assert a.forget_unseen("run-a1") == []  # b's group is not a's to forget
    assert a.write_index(str(tmp_path / "index.parquet"), "run-a1") == 2  # both endpoints' files
    rec("a", "run-a2", "ga2", "/d/a2.csv")
    assert sorted(a.forget_unseen("run-a2")) == ["ga"]  # a's unseen group goes, b's stays
    assert [g for g, *_ in a.iter_group_versions()] == ["ga2", "gb"]
    a.close()


def test_state_lock_waits_refuses_naming_the_holder_and_takes_over_a_dead_one(tmp_path):
    lock = MetadataDir.of(str(tmp_path / "out")).lock
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from tasks.store.state_lock import state_lock\n"
         "with state_lock(sys.argv[1], flow_run='run-123'):\n    print('held', flush=True); time.sleep(120)", lock],
        cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        started = time.monotonic()
        with pytest.raises(StateLocked, match=r"in use by flow run run-123 \(pid \d+ on ") as err:
            with state_lock(lock, flow_run="mine", timeout_s=0.5):
                pass
        assert isinstance(err.value, MetadataDirError) and time.monotonic() - started >= 0.5
        assert "\n" not in str(err.value)
        holder.send_signal(signal.SIGKILL)  # a dead holder's lock is stale: the next run takes it
        holder.wait(10)
        with state_lock(lock, flow_run="mine", timeout_s=5) as me:
            assert me["flow_run"] == "mine"
            assert json.loads(open(lock).read())["pid"] == os.getpid()
    finally:
        holder.kill()
        holder.wait(10)


TAKER = """
import json, sys
from tasks.store.flush_queue import FlushQueue
got = []
with FlushQueue(sys.argv[1]) as q:
    while True:
        files, empty = q.take(3)
        got += [f["path"] for f in files]
        if empty:
            break
print(json.dumps(got))
"""


def test_flush_queue_hands_out_while_filling_each_file_once_across_processes(tmp_path):
    path = str(tmp_path / "q" / "flush-1.sqlite")
    with pytest.raises(Exception, match="no flush queue"):
        FlushQueue(path)
    q = FlushQueue(path, create=True)
    q.put([{"path": f"/d/{i}"} for i in range(5)])
    files, empty = q.take(2)  # the crawl is still running: files come out, the queue is not "empty"
    assert [f["path"] for f in files] == ["/d/0", "/d/1"] and not empty
    takers = [subprocess.Popen([sys.executable, "-c", TAKER, path], cwd=REPO, stdout=subprocess.PIPE, text=True)
              for _ in range(3)]
    for start in range(5, 300, 25):
        q.put([{"path": f"/d/{i}"} for i in range(start, start + 25)])
    q.finish()
    got = [p for t in takers for p in json.loads(t.communicate(timeout=60)[0])]
    assert sorted(got + ["/d/0", "/d/1"]) == sorted(f"/d/{i}" for i in range(305))  # each once
    assert q.take(5) == ([], True)
    q.close()


def test_exclusion_globs_and_the_metadata_dir_are_never_crawled(tmp_path):
    root = tmp_path / "tree"
    for rel in ["a.csv", "sub/b.csv", ".git/HEAD", "sub/.git/x", "pkg/__pycache__/m.pyc", "c.tmp",
                "build/cache/z", "meta/index.parquet", "meta/.xtract/crawl.parquet", "metadata.csv"]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("x")
    keep = CrawlFilter.of([".git", "__pycache__", "*.tmp", "build/cache"], str(root / "meta"))
    crawler = LocalCrawler()
    status = crawl_to_spool(crawler, [str(root)], str(tmp_path / "spool.parquet"), keep=keep)
    paths = sorted(p for cols in iter_spool(str(tmp_path / "spool.parquet")) for p in cols["path"])
    assert paths == sorted(str(root / p) for p in ["a.csv", "sub/b.csv", "metadata.csv"])
    assert status.files == 3 and status.excluded == 7 and status.bytes == 3
    with pytest.raises(ConfigurationError, match="every file"):
        CrawlFilter.of(["**"])
    anchored = CrawlFilter.of([f"{root}/sub/*"])
    rows, dropped, _ = anchored.records([])
    assert rows == [] and dropped == 0


def test_seed_short_scope_names_become_full_scopes():
    creds = GlobusCredentials(client_id="c", scopes=["transfer", "petrel", "funcx_scope", "openid", "search"])
    assert "https://auth.globus.org/scopes/56ceac29-e98a-440a-a594-b41e7a084b62/all" in creds.scopes
    assert "openid" in creds.scopes and all(":" in s or s == "openid" for s in creds.scopes)
    reqs = creds._scope_requirements()
    assert reqs["auth.globus.org"] == ["openid"]
    assert sum(len(v) for v in reqs.values()) == 5  # transfer/search/compute defaults once each, petrel, openid


def test_old_flush_queues_are_pruned_but_the_newest(tmp_path):
    from tasks.store.flush_queue import prune_queues

    paths = []
    for i in range(3):
        q = FlushQueue(str(tmp_path / f"flush-c{i}.sqlite"), create=True)
        q.put([{"path": f"/d/{i}"}])
        q.close()
        os.utime(q.path, (1_700_000_000 + i, 1_700_000_000 + i))
        paths.append(q.path)
    assert sorted(prune_queues(str(tmp_path), keep=1)) == paths[:2]
    assert os.path.exists(paths[2]) and not os.path.exists(paths[0])


def test_crawls_are_ordered_by_request_not_by_who_ran_last(tmp_path):
    from tasks.store.endpoint_crawls import crawl_to_extract, latest_crawl, prune_crawls, record_crawl

    state = MetadataDir.of(str(tmp_path / "out")).endpoint("ep-1")
    with pytest.raises(ConfigurationError, match="crawl it first"):
        crawl_to_extract(state, None)
    for cid in ("c1", "c2", "c3"):
        os.makedirs(state.crawl_dir(cid))
        open(state.groups_spool(cid), "w").close()
    assert record_crawl(state, "c2", 200.0)
    assert not record_crawl(state, "c1", 100.0)  # requested earlier, ran later: not the latest
    assert latest_crawl(state) == ("c2", 200.0) and crawl_to_extract(state, None) == "c2"
    assert crawl_to_extract(state, "c1") == "c1"  # an extraction started for c1 reads c1
    for i, cid in enumerate(("c2", "c1", "c3")):
        os.utime(state.crawl_dir(cid), (1_700_000_000 + i, 1_700_000_000 + i))
    assert prune_crawls(state, keep=2) == []  # c2 is the latest: never pruned; c1, c3 are the newest two
    os.utime(state.crawl_dir("c1"), (1_600_000_000, 1_600_000_000))
    assert prune_crawls(state, keep=1) == ["c1"]
    with pytest.raises(ConfigurationError, match="gone"):
        crawl_to_extract(state, "c1")
