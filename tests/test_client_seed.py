"""The xtract-sdk 0.0.7 README script, ported to local directories (only imports and paths changed),
and what it relies on: endpoints sharing one local_mdata_path, identities, flushing from two clients,
two `xtract run` on one OUT, a metadata directory inside the crawled tree. Real Prefect server, real
detached runs, real files."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import time

import pandas as pd
import pytest

from tests.helpers import VALIDATE, write_csv

REPO = pathlib.Path(__file__).resolve().parent.parent


def tree(root: pathlib.Path, n: int) -> list[str]:
    """``n`` small CSV files under ``root``; their absolute paths."""
    return [str(write_csv(root / f"part{i % 2}" / f"t{i}.csv", rows=3 + i)) for i in range(n)]


def index_paths(path: pathlib.Path | str) -> list[str]:
    return sorted(pd.read_parquet(pathlib.Path(path) / "index.parquet")["path"])


def validate(path: pathlib.Path | str, files: int) -> None:
    check = subprocess.run([*VALIDATE, str(path), "--files", str(files)], capture_output=True, text=True,
                           timeout=120)
    assert check.returncode == 0, check.stdout + check.stderr


@pytest.mark.slow
def test_seed_readme_script_ported_to_local_dirs(tmp_path, monkeypatch):
    d1, d2 = tmp_path / "data" / "run1", tmp_path / "data" / "run2"
    files = tree(d1, 3) + tree(d2, 2)
    mdata = str(tmp_path / "home" / "user" / "metadata")
    monkeypatch.chdir(tmp_path)  # offload_metadata(dest_path="") lands here

    # ---- the README, imports and paths changed only ----
    from flows.client import XtractClient, XtractEndpoint

    xtr = XtractClient(auth_scopes=None, force_login=False)
    endpoint_1 = XtractEndpoint(repo_type='local',
                                globus_ep_id=None,
                                funcx_ep_id=None,
                                dirs=[str(d1)],
                                grouper='file_is_group',
                                local_mdata_path=mdata,
                                remote_mdata_path=mdata)
    endpoint_2 = XtractEndpoint(repo_type='local',
                                globus_ep_id=None,
                                funcx_ep_id=None,
                                dirs=[str(d2)],
                                grouper='file_is_group',
                                local_mdata_path=mdata,
                                remote_mdata_path=mdata)
    xeps = [endpoint_1, endpoint_2]
    crawl_ids = xtr.crawl(xeps)
    print(xtr.get_crawl_status(crawl_ids=None))
    xtr.crawl_and_wait(xeps)
    print(xtr.flush_crawl_metadata(crawl_ids=None, next_n_files=100))
    container_path = str(tmp_path / "containers")
    status = xtr.register_containers(endpoint=endpoint_1, container_path=container_path)
    print(xtr.xtract())
    print(xtr.get_xtract_status())
    path = xtr.offload_metadata(dest_ep_id=None, dest_path="", timeout=600, delete_source=False)
    # ---- end of the README ----

    assert status["used"] is False and "not used" in status["message"]  # local workers: said, not pretended
    assert len(set(crawl_ids) | set(xtr.crawl_ids)) == 4
    assert index_paths(mdata) == sorted(files)  # both endpoints, complete, in one local_mdata_path
    validate(mdata, len(files))
    offloaded = pathlib.Path(path)
    assert offloaded.parent == tmp_path and time.strptime(offloaded.name, "%Y-%m-%d-%H:%M:%S")
    assert index_paths(offloaded) == sorted(files)
    validate(offloaded, len(files))

    # readable run names and artifact keys: the first dir's last component + a short digest
    from prefect.client.orchestration import get_client

    from flows.client_status import as_uuid
    with get_client(sync_client=True) as client:
        names = [client.read_flow_run(as_uuid(c)).name for c in xtr.crawl_ids]
        keys = {a.key for a in client.read_artifacts() if a.key}
    assert names == [f"{endpoint_1.slug()}-crawl", f"{endpoint_2.slug()}-crawl"]
    assert endpoint_1.slug().startswith("run1-") and endpoint_2.slug().startswith("run2-")
    assert {f"{endpoint_1.slug()}-containers", f"{endpoint_2.slug()}-crawl-status"} <= keys
    xtr.wait(timeout_s=60)


@pytest.mark.slow
def test_same_dirs_different_metadata_paths_both_reach_the_offload(tmp_path):
    from flows.client import XtractClient, XtractEndpoint

    files = tree(tmp_path / "data", 3)
    eps = [XtractEndpoint(dirs=[str(tmp_path / "data")], local_mdata_path=str(tmp_path / m)) for m in ("m1", "m2")]
    assert eps[0].slug() != eps[1].slug()
    xtr = XtractClient()
    xtr.crawl(eps)
    assert xtr.xtract() == [200, 200]
    path = pathlib.Path(xtr.offload_metadata(dest_path=str(tmp_path / "archive"), timeout=300))
    subdirs = sorted(p.name for p in path.iterdir())
    assert subdirs == sorted(ep.slug() for ep in eps)
    for sub in subdirs:
        assert index_paths(path / sub) == sorted(files)
    xtr.wait(timeout_s=60)


FLUSHER = """
import json, sys, time
from flows.client import XtractClient
xtr = XtractClient()
got = []
while True:
    page = xtr.flush_crawl_metadata([sys.argv[1]], first_n_files=3)[0]
    got += [f["path"] for f in page["file_ls"]]
    if page["queue_empty"]:
        break
    time.sleep(0.05)
print(json.dumps(got))
"""


@pytest.mark.slow
def test_two_clients_flushing_one_crawl_get_each_file_once(tmp_path, subprocess_env):
    from flows.client import XtractClient, XtractEndpoint

    files = tree(tmp_path / "data", 40)
    ep = XtractEndpoint(dirs=[str(tmp_path / "data")], local_mdata_path=str(tmp_path / "m"))
    xtr = XtractClient()
    (cid,) = xtr.crawl([ep])
    other = subprocess.Popen([sys.executable, "-c", FLUSHER, cid], env=subprocess_env, cwd=REPO,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    mine: list[str] = []
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        page = xtr.flush_crawl_metadata(first_n_files=3)[0]
        mine += [f["path"] for f in page["file_ls"]]
        if page["queue_empty"]:
            break
        time.sleep(0.05)
    out, err = other.communicate(timeout=180)
    assert other.returncode == 0, err[-2000:]
    theirs = json.loads(out.strip().splitlines()[-1])
    assert sorted(mine + theirs) == sorted(files)  # each file handed out once, across two processes
    assert xtr.flush_crawl_metadata()[0]["queue_empty"] is True
    xtr.wait(timeout_s=60)


def test_client_decides_where_extraction_runs_and_refuses_remote_paths_locally(tmp_path):
    from flows.client import XtractClient, XtractClientError, XtractEndpoint
    from xtract_blocks import GlobusCredentials
    from xtract_blocks.compute import GlobusComputeSettings

    creds = GlobusCredentials(client_id="c", client_secret="s")
    local = XtractEndpoint(dirs=[str(tmp_path)], local_mdata_path=str(tmp_path / "m"))
    near = XtractEndpoint(repo_type="Globus", globus_ep_id="g", funcx_ep_id="fx", dirs=["/d"], credentials=creds)
    far = XtractEndpoint(repo_type="globus", globus_ep_id="g", dirs=["/d"], credentials=creds)
    xtr = XtractClient()
    assert xtr._plan(local, local.slug()) == ("local", None)
    assert xtr._plan(near, near.slug())[0] == "globus-compute"  # funcx_ep_id: Globus Compute there
    assert xtr._plan(far, far.slug()) == ("local", None)
    with pytest.raises(XtractClientError, match="local_ep_id is not set"):  # no compute, no staging: refused
        xtr._check_plan(far, "local", None)
    configured = XtractClient(compute_settings=GlobusComputeSettings(endpoint_id="e", collection_id="c"))
    assert configured._plan(far, far.slug())[0] == "globus-compute"  # staged to the configured compute
    with pytest.raises(XtractClientError, match="same endpoint"):
        xtr.crawl([local, XtractEndpoint(dirs=[str(tmp_path)], local_mdata_path=str(tmp_path / "m"))])
    status = xtr.register_containers(near, "/containers")
    assert status["used"] and status["container_type"] == "apptainer"
    assert status["image_example"] == "/containers/xtract-all.sif"
    executor, settings = xtr._plan(near, near.slug())
    assert settings is not None and settings.container_path == "/containers"  # travels with the run


RUN = [sys.executable, "-m", "flows.cli", "run"]


@pytest.mark.slow
def test_two_xtract_runs_on_one_out_wait_or_refuse_and_out_stays_whole(tmp_path, subprocess_env):
    files = tree(tmp_path / "data", 12)
    out = tmp_path / "out"
    args = [str(tmp_path / "data"), "-o", str(out), "-q", "--workers", "1"]
    runs = [subprocess.Popen([*RUN, *args], env=subprocess_env, cwd=REPO, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(r.wait(300), r.communicate()[1]) for r in runs]
    for code, err in results:
        assert code == 0 or "in use by flow run" in err, err[-2000:]
    assert any(code == 0 for code, _ in results)
    assert index_paths(out) == sorted(files)
    validate(out, len(files))

    # a holder that does not let go: --lock-timeout 0 refuses at once, in one line naming the run
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from tasks.store.state_lock import state_lock\n"
         "with state_lock(sys.argv[1], flow_run='holder-run'):\n    print('held', flush=True); time.sleep(300)",
         str(out / ".xtract" / "lock")], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        refused = subprocess.run([*RUN, *args, "--lock-timeout", "0"], env=subprocess_env, cwd=REPO,
                                 capture_output=True, text=True, timeout=300)
        assert refused.returncode != 0
        lines = [line for line in refused.stderr.splitlines() if "in use by flow run holder-run" in line]
        assert len(lines) == 1, refused.stderr[-2000:]
    finally:
        holder.kill()
        holder.wait(10)
    assert index_paths(out) == sorted(files)  # nothing lost to the refused run


@pytest.mark.slow
def test_metadata_dir_inside_the_crawled_tree_is_never_crawled(tmp_path, subprocess_env):
    data = tmp_path / "data"
    files = tree(data, 3)
    (data / ".git").mkdir()
    (data / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    args = [str(data), "-o", str(data / "meta"), "-q", "--json", "--workers", "1", "--exclude", ".git"]
    for _ in range(2):  # the rerun sees the first run's spools, journal, group files and report
        done = subprocess.run([*RUN, *args], env=subprocess_env, cwd=REPO, capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        summary = json.loads(done.stdout.strip().splitlines()[-1])
        assert summary["files_crawled"] == 3 and summary["files_excluded"] >= 1  # .git/HEAD, and OUT's files
    assert index_paths(data / "meta") == sorted(files)


def wait_crawled(xtr, ids: list[str], timeout_s: float = 180.0) -> list[dict]:
    deadline = time.monotonic() + timeout_s
    while True:
        statuses = xtr.get_crawl_status(ids)
        if all(s["status"] in ("complete", "failed") for s in statuses):
            return statuses
        assert time.monotonic() < deadline, statuses
        time.sleep(0.5)


@pytest.mark.slow
def test_an_extraction_reads_the_crawl_it_was_started_for(tmp_path):
    from flows.client import XtractClient, XtractEndpoint

    old_files = tree(tmp_path / "data", 2)
    ep = XtractEndpoint(dirs=[str(tmp_path / "data")], local_mdata_path=str(tmp_path / "m"))
    xtr = XtractClient()
    (old,) = xtr.crawl([ep])
    wait_crawled(xtr, [old])
    write_csv(tmp_path / "data" / "later.csv")
    (new,) = xtr.crawl([ep])
    wait_crawled(xtr, [new])
    xtr.xtract([old])
    (status,) = xtr.wait_for_xtract([old], timeout_s=180)
    assert status["xtract_status"] == "complete", status
    assert index_paths(tmp_path / "m") == sorted(old_files)  # the old crawl's listing, not the newer one's
    xtr.xtract([new])
    (status,) = xtr.wait_for_xtract([new], timeout_s=180)
    assert index_paths(tmp_path / "m") == sorted([*old_files, str(tmp_path / "data" / "later.csv")])
    xtr.wait(timeout_s=60)


def test_several_endpoints_sharing_one_out_in_one_flow(tmp_path):
    from flows.multi_flow import xtract
    from tasks.pools.options import ExtractionOptions
    from xtract_blocks import XtractEndpoint

    files = tree(tmp_path / "a", 2) + tree(tmp_path / "b", 3)
    out = str(tmp_path / "out")
    eps = [XtractEndpoint(dirs=[str(tmp_path / d)], local_mdata_path=out) for d in ("a", "b")]
    state = xtract([eps[0], eps[0]], return_state=True)
    assert state.is_failed() and "given more than once" in str(state.message)
    state = xtract(eps, extraction=ExtractionOptions(workers=1), dest_path=str(tmp_path / "dest"),
                   return_state=True)
    assert state.is_completed(), state.message
    assert index_paths(out) == sorted(files)  # the two subflows took turns with OUT's lock
    assert index_paths(state.result()[0]["offload_path"]) == sorted(files)  # one index, copied once


@pytest.mark.slow
def test_globus_endpoint_crawls_without_compute_is_refused_before_work_and_offloads_to_default_dir(tmp_path):
    from flows.client import XtractClient, XtractClientError, XtractEndpoint
    from tests.globus_service.testing import loopback_globus

    data = tmp_path / "data"
    files = tree(data, 3)
    for i, p in enumerate(sorted(files)):
        os.utime(p, (1_700_000_000 + i, 1_700_000_000 + i))  # Transfer lists mtimes to the second
    dest = tmp_path / "archive"
    dest.mkdir()
    with loopback_globus() as globus:
        t = globus.service.transfer
        ids = {"data": t.add_endpoint("/"), "local": t.add_endpoint("/"), "dest": t.add_endpoint(str(dest))}
        xtr = XtractClient(credentials=globus.credentials)
        bare = XtractEndpoint(repo_type="Globus", globus_ep_id=ids["data"], dirs=[str(data)],
                              local_mdata_path=str(tmp_path / "m1"))
        (crawled,) = wait_crawled(xtr, xtr.crawl([bare]))
        assert crawled["status"] == "complete" and crawled["data"]["files_crawled"] == 3  # no compute needed
        with pytest.raises(XtractClientError, match="local_ep_id is not set"):
            xtr.xtract()  # no funcx_ep_id, no compute endpoint, no staging target: refused before any run
        staged = XtractEndpoint(repo_type="globus", globus_ep_id=ids["data"], local_ep_id=ids["local"],
                                dirs=[str(data)], local_mdata_path=str(tmp_path / "m2"),
                                staging_dir=str(tmp_path / "staging"))
        wait_crawled(xtr, xtr.crawl([staged]))
        assert xtr.xtract() == [200]
        path = xtr.offload_metadata(dest_ep_id=ids["dest"], dest_path="", timeout=300)
        assert path.startswith("/~/")  # the destination collection's default directory
        assert index_paths(dest / path[len("/~/"):]) == sorted(files)
        xtr.wait(timeout_s=60)


@pytest.mark.slow
def test_registered_container_path_reaches_every_compute_task_and_the_artifact(tmp_path, compute_loop):
    """Through the SDK's Executor to a real endpoint (tests/compute_service): every task names its image."""
    import uuid

    from prefect.client.orchestration import get_client

    from flows.client import XtractClient, XtractEndpoint
    from xtract_blocks.compute import GlobusComputeSettings

    files = tree(tmp_path / "data", 4)
    settings = GlobusComputeSettings(backend="sdk", registry_block=f"reg-{uuid.uuid4().hex[:12]}")
    ep = XtractEndpoint(dirs=[str(tmp_path / "data")], local_mdata_path=str(tmp_path / "m"),
                        funcx_ep_id=compute_loop.endpoint_id, credentials=compute_loop.credentials())
    subs_before = len(compute_loop.service.submissions)
    xtr = XtractClient(compute_settings=settings, workers=1)
    xtr.crawl([ep])
    status = xtr.register_containers(ep, container_path="/images")
    assert status["used"] and status["executor"] == "globus-compute" and status["container_type"] == "apptainer"
    assert xtr.xtract() == [200]
    (done,) = xtr.wait_for_xtract(timeout_s=240)
    assert done["xtract_status"] == "complete", done
    assert index_paths(tmp_path / "m") == sorted(files)
    subs = compute_loop.service.submissions[subs_before:]
    assert subs and all(s["user_endpoint_config"]["container_uri"].startswith("/images/xtract-") for s in subs)
    with get_client(sync_client=True) as client:
        arts = {a.key: a for a in client.read_artifacts() if a.key}
    assert "/images/xtract-" in str(arts[f"{ep.slug()}-containers"].data)
    xtr.wait(timeout_s=60)
