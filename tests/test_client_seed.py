"""The xtract-sdk 0.0.7 README script, ported to local directories (only imports and paths changed),
and what it relies on: endpoints sharing one local_mdata_path, identities, flushing from two clients,
two `xtract run` on one OUT, a metadata directory inside the crawled tree. Real Prefect server, real
detached runs, real files."""

from __future__ import annotations

import json
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
        assert summary["files_crawled"] == 3
    assert index_paths(data / "meta") == sorted(files)
