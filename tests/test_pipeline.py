"""The embedded pipeline end to end: a real Prefect server, real files, real artifacts."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import time

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, FlowRunFilter, FlowRunFilterId

from flows.endpoint_flow import xtract_endpoint
from tasks.pools.options import ExtractionOptions
from tests.helpers import check_contract, load_group, small_corpus, write_csv
from xtract_blocks import XtractEndpoint


def run(root: pathlib.Path, out: pathlib.Path, **kwargs):
    ep = XtractEndpoint(dirs=[str(root)], local_mdata_path=str(out), grouper=kwargs.pop("grouper", "file_is_group"))
    state = xtract_endpoint(ep, **kwargs, extraction=ExtractionOptions(workers=2), return_state=True)
    assert state.is_completed(), state.message
    return state, state.result()


def test_flow_writes_contract_and_error_records(tmp_path):
    files = small_corpus(tmp_path / "data")
    out = tmp_path / "out"
    state, summary = run(tmp_path / "data", out)
    idx = check_contract(out, expected_files=6)
    status = dict(zip(idx["path"], idx["status"], strict=True))
    assert status[str(files["bad"])] == "error"
    assert status[str(files["t1"])] == "ok"
    assert status[str(files["bin"])] == "unknown"
    assert summary["files_crawled"] == 6 and summary["failed"] == 1
    assert summary["extracted"] + summary["unknown"] == 5 and summary["extracted"] >= 3
    assert "1 failed" in state.message
    bad = load_group(out, idx, files["bad"])
    assert bad["errors"][0]["type"] == "ParserError"
    good = load_group(out, idx, files["t2"])
    cols = {c["name"]: c for c in good["metadata"]["tabular"]["columns"]}
    assert good["metadata"]["tabular"]["rows"] == 10
    assert cols["x"]["mean"] == pytest.approx(4.5)
    assert cols["y"]["max"] == pytest.approx(4.5)


def test_rerun_skips_done_groups_and_follows_changes(tmp_path):
    files = small_corpus(tmp_path / "data")
    out = tmp_path / "out"
    run(tmp_path / "data", out)
    _, again = run(tmp_path / "data", out)
    # the broken table is retried (failures are never "done") and fails again; the rest is skipped
    assert again["skipped"] == 5 and again["extracted"] == 0 and again["failed"] == 1
    idx = check_contract(out, expected_files=6)
    assert set(idx["status"]) == {"skipped", "error"}
    assert idx.loc[idx["path"] == str(files["bad"]), "status"].item() == "error"

    write_csv(files["t1"], rows=7)  # changed: re-extracted
    os.utime(files["t1"], (time.time() + 5, time.time() + 5))
    files["txt"].unlink()  # deleted: leaves the index
    new = write_csv(tmp_path / "data" / "new.csv")  # new: extracted
    _, third = run(tmp_path / "data", out)
    idx = check_contract(out, expected_files=6)
    status = dict(zip(idx["path"], idx["status"], strict=True))
    assert status[str(files["t1"])] == "ok" and status[str(new)] == "ok"
    assert str(files["txt"]) not in status
    assert third["skipped"] == 3 and third["extracted"] == 2 and third["unknown"] == 0 and third["failed"] == 1
    assert load_group(out, idx, files["t1"])["metadata"]["tabular"]["rows"] == 7


@pytest.mark.parametrize("grouper,n_groups", [("directory", 3), ("related", 6)])
def test_groupers(tmp_path, grouper, n_groups):
    data = tmp_path / "data"
    small_corpus(data)
    (data / "a" / "notes.json").write_text('{"k": 1}')  # same stem as notes.txt
    _, summary = run(data, tmp_path / "out", grouper=grouper)
    assert summary["groups"] == n_groups
    check_contract(tmp_path / "out", expected_files=7)


def read_run_and_artifacts(flow_run_id: str):
    with get_client(sync_client=True) as client:
        arts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
        runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    return arts, runs


def test_artifacts_and_state_read_back(tmp_path):
    small_corpus(tmp_path / "data")
    _, summary = run(tmp_path / "data", tmp_path / "out")
    arts, runs = read_run_and_artifacts(summary["flow_run_id"])
    by_type: dict[str, list] = {}
    for a in arts:
        by_type.setdefault(a.type, []).append(a)
        assert a.key is None or all(c.islower() or c.isdigit() or c == "-" for c in a.key)
    assert by_type["progress"][0].data == pytest.approx(100.0)
    tables = {a.key: a for a in by_type["table"]}
    crawl = next(v for k, v in tables.items() if k.endswith("crawl-status"))
    row = json.loads(crawl.data)[0] if isinstance(crawl.data, str) else crawl.data[0]
    assert row["files_crawled"] == 6 and row["message"] == "OK" and row["crawl_id"] == summary["flow_run_id"]
    counters = next(v for k, v in tables.items() if k.endswith("xtract-counters"))
    rows = json.loads(counters.data) if isinstance(counters.data, str) else counters.data
    values = {r["counter"]: r["value"] for r in rows}
    assert values["cumu_orch_enter"] == 6 and values["fx.success"] == 5 and values["fx.failed"] == 1
    md = next(a.data for a in by_type["markdown"] if a.key and a.key.endswith("-summary"))
    assert "| tabular |" in md and "failed: **1**" in md
    assert runs[0].state.message.startswith("6 files in 6 groups")


@pytest.mark.slow
def test_cli_subprocess_json(tmp_path, xtract_bin, subprocess_env):
    small_corpus(tmp_path / "data")
    out = tmp_path / "out"
    proc = subprocess.run([*xtract_bin, "run", str(tmp_path / "data"), "--metadata-dir", str(out), "--json",
                           "--workers", "2"], capture_output=True, text=True, env=subprocess_env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert {"files_crawled", "bytes_crawled", "groups", "extracted", "failed", "unknown", "skipped",
            "metadata_dir", "flow_run_id", "seconds"} <= set(summary)
    assert summary["files_crawled"] == 6 and summary["failed"] == 1
    stages = summary["stage_seconds"]  # where the time went, stage by stage
    assert set(stages) == {"crawl", "group", "xtract", "sink", "search_index", "report"}
    assert all(v >= 0 for v in stages.values()) and sum(stages.values()) <= summary["seconds"]
    check_contract(out, expected_files=6)


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["run", "/no/such/dir", "--metadata-dir", "{tmp}/out"], "path does not exist: /no/such/dir"),
        (["run", "{tmp}", "--metadata-dir", "/proc/xtract-out"], "metadata dir is not writable"),
        (["run", "{tmp}", "--metadata-dir", "{tmp}/out", "--workers", "0"], "--workers: must be at least 1"),
        (["run", "{tmp}", "--metadata-dir", "{tmp}/out", "--grouper", "nope"], "invalid choice: 'nope'"),
        (["run", "{tmp}"], "the following arguments are required: --metadata-dir"),
    ],
)
def test_cli_bad_input_fails_fast(tmp_path, xtract_bin, subprocess_env, argv, needle):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    started = time.monotonic()
    proc = subprocess.run([*xtract_bin, *argv], capture_output=True, text=True, env=subprocess_env, timeout=60)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], proc.stderr
    assert time.monotonic() - started < 10


def test_several_endpoints_run_as_subflows_and_offload_together(tmp_path):
    from flows.multi_flow import xtract

    eps = []
    for name in ("one", "two"):
        small_corpus(tmp_path / name)
        eps.append(XtractEndpoint(dirs=[str(tmp_path / name)], local_mdata_path=str(tmp_path / f"out-{name}")))
    state = xtract(eps, extraction=ExtractionOptions(workers=2), dest_path=str(tmp_path / "dest"), return_state=True)
    assert state.is_completed(), state.message
    summaries = state.result()
    assert [s["files_crawled"] for s in summaries] == [6, 6]
    folder = pathlib.Path(summaries[0]["offload_path"])
    assert folder.parent == tmp_path / "dest"
    for s in summaries:
        check_contract(folder / s["endpoint"], expected_files=6)
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(
            any_=[s["flow_run_id"] for s in summaries])))
        parent_task_ids = {r.parent_task_run_id for r in runs}
    assert None not in parent_task_ids, "endpoint runs must be subflows of the xtract run"


def test_stray_group_files_are_removed(tmp_path):
    """A group file the journal never heard of (a killed run's, for a file deleted since) leaves at the sink."""
    small_corpus(tmp_path / "data")
    out = tmp_path / "out"
    run(tmp_path / "data", out)
    stray = out / "groups" / "0123456789abcdef01234567.json"
    stray.write_text(json.dumps({"group_id": stray.stem, "files": [{"path": str(tmp_path / "gone.csv")}]}))
    run(tmp_path / "data", out)
    assert not stray.exists()
    check_contract(out, expected_files=6)
