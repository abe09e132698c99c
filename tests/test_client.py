"""XtractClient, the seed's API: real detached flow runs against the session's Prefect server, real files."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys
import time
import uuid

import pytest

from tests.helpers import VALIDATE, check_contract, small_corpus

ASK_OTHER_PROCESS = """
import json, sys
from flows.client import XtractClient
xtr = XtractClient()
print(json.dumps({"crawl": xtr.get_crawl_status(sys.argv[1:]), "xtract": xtr.get_xtract_status(sys.argv[1:])}))
"""


def ask_another_process(env: dict[str, str], crawl_ids: list[str]) -> dict:
    out = subprocess.run([sys.executable, "-c", ASK_OTHER_PROCESS, *crawl_ids], env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def wait_crawled(xtr, ids: list[str], timeout_s: float = 120.0) -> list[dict]:
    deadline = time.monotonic() + timeout_s
    while True:
        statuses = xtr.get_crawl_status(ids)
        if all(s["status"] in ("complete", "failed") for s in statuses):
            return statuses
        assert time.monotonic() < deadline, statuses
        time.sleep(0.5)


def test_endpoint_is_keyword_compatible_with_the_seed_in_both_field_orders(tmp_path):
    from flows.client import XtractEndpoint
    from xtract_blocks import XtractEndpoint as Block

    # xtract_sdk/endpoint/xtract_endpoint.py order, then the seed README's order
    a = XtractEndpoint(repo_type="local", globus_ep_id=None, dirs=[str(tmp_path)], grouper="directory",
                       local_mdata_path=str(tmp_path / "m"), funcx_ep_id=None)
    b = XtractEndpoint(funcx_ep_id=None, local_mdata_path=str(tmp_path / "m"), grouper="directory",
                       dirs=[str(tmp_path)], globus_ep_id=None, repo_type="local")
    assert XtractEndpoint is Block
    assert a.model_dump() == b.model_dump()
    assert a.dirs == [str(tmp_path)] and a.grouper == "directory" and a.repo_type == "local"
    seed = XtractEndpoint(repo_type="local", globus_ep_id=None, dirs=str(tmp_path), grouper="file_is_group",
                          local_mdata_path=str(tmp_path / "m"), remote_mdata_path="/remote/m")
    assert seed.model_extra == {"remote_mdata_path": "/remote/m"} and seed.dirs == [str(tmp_path)]


def test_errors_are_exceptions_with_messages():
    from flows.client import UnknownCrawlError, XtractClient, XtractClientError, XtractEndpoint

    xtr = XtractClient()
    with pytest.raises(XtractClientError, match="Missing crawl ID"):
        xtr.get_crawl_status()
    missing = str(uuid.uuid4())
    with pytest.raises(UnknownCrawlError, match=missing):
        xtr.get_crawl_status([missing])
    with pytest.raises(UnknownCrawlError, match="not a crawl id"):
        xtr.flush_crawl_metadata(["no-such-id"])
    with pytest.raises(XtractClientError, match="force_login needs Globus credentials"):
        XtractClient(force_login=True)
    with pytest.raises(XtractClientError, match="Globus collection"):
        xtr.crawl([XtractEndpoint(repo_type="globus", globus_ep_id="abc", dirs=["/x"])])
    with pytest.raises(XtractClientError, match="no GlobusCredentials block named"):
        XtractClient(credentials="no-such-credentials")


@pytest.mark.slow
def test_round_trip_crawl_status_flush_xtract_offload(tmp_path, subprocess_env):
    from flows.client import XtractClient, XtractEndpoint

    files = small_corpus(tmp_path / "repo")
    out = tmp_path / "meta"
    ep = XtractEndpoint(repo_type="local", globus_ep_id=None, dirs=[str(tmp_path / "repo")],
                        grouper="file_is_group", local_mdata_path=str(out))
    xtr = XtractClient(workers=1)

    started = time.perf_counter()
    crawl_ids = xtr.crawl([ep])
    crawl_returned_s = time.perf_counter() - started
    assert crawl_returned_s < 5.0, f"crawl() blocked for {crawl_returned_s:.1f}s"
    assert xtr.crawl_ids == crawl_ids and xtr.cid_to_xep_map[crawl_ids[0]] is ep
    early = xtr.get_crawl_status()[0]
    assert early["status"] in ("pending", "crawling", "complete") and early["message"] == "OK"

    (status,) = wait_crawled(xtr, crawl_ids)
    assert status["status"] == "complete", status
    assert status["message"] == "OK"
    assert status["data"] == {"files_crawled": len(files), "groups_crawled": len(files),
                              "bytes_crawled": sum(p.stat().st_size for p in files.values())}

    # flush: pages of 4, each file once, and the crawl spool stays whole for extraction
    seen: list[str] = []
    page = xtr.flush_crawl_metadata(first_n_files=4)[0]
    assert page["num_files"] == 4 and not page["queue_empty"] and page["crawl_id"] == crawl_ids[0]
    seen += [f["path"] for f in page["file_ls"]]
    page = xtr.flush_crawl_metadata(crawl_ids, next_n_files=4)[0]
    assert page["num_files"] == 2 and page["queue_empty"]
    seen += [f["path"] for f in page["file_ls"]]
    assert xtr.flush_crawl_metadata()[0] == {"crawl_id": crawl_ids[0], "file_ls": [], "num_files": 0,
                                             "queue_empty": True}
    assert sorted(seen) == sorted(str(p) for p in files.values())
    assert {"path", "size", "mtime", "extension"} <= set(page["file_ls"][0])

    with pytest.raises(Exception, match="call xtract"):
        xtr.get_xtract_status()
    xtr.register_containers(ep, str(tmp_path / "containers"))
    assert xtr.xtract() == [200]
    (done,) = xtr.wait_for_xtract(timeout_s=180)
    assert done["xtract_status"] == "complete", done
    counters = done["xtract_counters"]
    assert set(counters) == {"cumu_orch_enter", "cumu_pulled", "cumu_scheduled", "cumu_to_schedule",
                             "flagged_unknown", "fx"}
    assert set(counters["fx"]) == {"failed", "pending", "success"}
    assert counters["fx"]["success"] + counters["fx"]["failed"] == len(files)
    assert counters["cumu_to_schedule"] == 0 and counters["fx"]["pending"] == 0
    idx = check_contract(out, expected_files=len(files))  # flushed files were extracted too
    assert (idx["status"] != "skipped").all()

    # another process, knowing only the crawl id, reads the same statuses from the Prefect API
    other = ask_another_process(subprocess_env, crawl_ids)
    assert other["crawl"] == xtr.get_crawl_status()
    assert other["xtract"][0]["xtract_status"] == "complete"
    assert other["xtract"][0]["xtract_counters"] == counters

    dest = tmp_path / "archive"
    path = xtr.offload_metadata(dest_path=str(dest))
    assert pathlib.Path(path).parent == dest and (pathlib.Path(path) / "index.parquet").exists()
    assert len(list((pathlib.Path(path) / "groups").glob("*.json"))) == len(files)
    check = subprocess.run([*VALIDATE, path, "--files", str(len(files))],
                           capture_output=True, text=True, timeout=120)
    assert check.returncode == 0, check.stdout + check.stderr
    xtr.wait(timeout_s=30)


@pytest.mark.slow
def test_crawl_and_wait_stops_on_a_failed_crawl(tmp_path, capsys):
    from flows.client import XtractClient, XtractClientError, XtractEndpoint

    gone = tmp_path / "not-there"
    ep = XtractEndpoint(repo_type="local", dirs=[str(gone)], local_mdata_path=str(tmp_path / "m"))
    xtr = XtractClient()
    (status,) = xtr.crawl_and_wait([ep], interval_s=0.5, timeout_s=120)
    assert status["status"] == "failed"
    assert str(gone) in status["message"]
    assert "'status': 'failed'" in capsys.readouterr().out
    with pytest.raises(XtractClientError, match="failed"):
        xtr.flush_crawl_metadata()
    xtr.wait(timeout_s=30)
