"""The endpoint flow with repo_type='globus' against the loopback service: staging, offload, Search, faults."""

from __future__ import annotations

import os
import pathlib

import pandas as pd
import pytest

from flows.endpoint_flow import xtract_endpoint
from tasks.offload import OffloadOptions
from tasks.pools.options import ExtractionOptions
from tests.globus_service import TransferBehaviour
from tests.globus_service.testing import loopback_globus
from tests.helpers import check_contract, load_group, small_corpus
from xtract_blocks import XtractEndpoint


@pytest.fixture(scope="module")
def globus():
    with loopback_globus() as lb:
        yield lb


@pytest.fixture
def setup(globus, tmp_path):
    """A corpus served by a collection rooted at '/', this machine's collection, and an archive collection."""
    data = tmp_path / "data"
    files = small_corpus(data)
    for i, p in enumerate(sorted(files.values())):
        os.utime(p, (1_700_000_000 + i, 1_700_000_000 + i))  # Transfer lists mtimes to the second
    t = globus.service.transfer
    dest = tmp_path / "archive"
    dest.mkdir()
    ids = {"data": t.add_endpoint("/"), "local": t.add_endpoint("/"), "dest": t.add_endpoint(str(dest))}
    return data, files, ids, dest


def globus_endpoint(globus, data: pathlib.Path, ids: dict[str, str], out: pathlib.Path, **fields) -> XtractEndpoint:
    return XtractEndpoint(repo_type="globus", globus_ep_id=ids["data"], local_ep_id=ids["local"], dirs=[str(data)],
                          local_mdata_path=str(out), credentials=globus.credentials,
                          staging_dir=str(out.parent / "staging"), **fields)


def test_globus_flow_matches_local_run_and_offloads_and_ingests(globus, setup, tmp_path):
    data, files, ids, dest = setup
    index_id = globus.service.search.add_index()
    out = tmp_path / "out-globus"
    ep = globus_endpoint(globus, data, ids, out, search_index_id=index_id)
    state = xtract_endpoint(ep, extraction=ExtractionOptions(workers=2),
                            offload_to=OffloadOptions(dest_path="/runs", dest_endpoint_id=ids["dest"],
                                                      search_visible_to=["urn:globus:groups:id:abc"]),
                            return_state=True)
    assert state.is_completed(), state.message
    summary = state.result()
    local_out = tmp_path / "out-local"
    local = xtract_endpoint(XtractEndpoint(dirs=[str(data)], local_mdata_path=str(local_out)),
                            extraction=ExtractionOptions(workers=2), return_state=True)
    assert local.is_completed(), local.message
    idx_g, idx_l = check_contract(out, expected_files=6), check_contract(local_out, expected_files=6)
    pd.testing.assert_frame_equal(idx_g, idx_l)
    assert load_group(out, idx_g, files["t2"])["metadata"] == load_group(local_out, idx_l, files["t2"])["metadata"]
    bad = load_group(out, idx_g, files["bad"])
    assert bad["endpoint"] == ids["data"] and str(tmp_path / "staging") not in str(bad)
    assert not any((tmp_path / "staging").iterdir()) if (tmp_path / "staging").exists() else True
    assert summary["search"]["entries"] == 6
    stored = globus.service.search.indices[index_id]
    assert f"globus://{ids['data']}{files['t1']}" in {s for s, _ in stored}
    assert all(e["visible_to"] == ["urn:globus:groups:id:abc"] for e in stored.values())
    archived = dest / summary["offload_path"].lstrip("/")
    assert summary["offload_path"].startswith("/runs/")
    check_contract(archived, expected_files=6)


@pytest.mark.slow
def test_globus_flow_survives_429_storm_and_5xx_burst(globus, setup, tmp_path):
    data, _, ids, _ = setup
    svc = globus.service
    svc.inject(f"{ids['data']}/ls", 3, status=429, retry_after=1)
    svc.inject(f"{ids['data']}/ls", 1, status=502)
    svc.inject("/transfer/v0.10/task/", 3, status=503, every=2)
    svc.inject("/transfer/v0.10/transfer", 1, status=502)
    out = tmp_path / "out"
    state = xtract_endpoint(globus_endpoint(globus, data, ids, out), extraction=ExtractionOptions(workers=2),
                            return_state=True)
    assert state.is_completed(), state.message
    summary = state.result()
    assert summary["dirs_failed"] == 0 and summary["files_crawled"] == 6
    idx = check_contract(out, expected_files=6)
    assert (idx["status"] == "ok").sum() == summary["extracted"] and summary["failed"] == 1
    assert all(f.times == 0 for f in svc.faults)


def test_globus_flow_forbidden_subtree_is_recorded(globus, setup, tmp_path):
    data, files, ids, _ = setup
    globus.service.transfer.forbidden.add((ids["data"], str(data / "a" / "b")))
    out = tmp_path / "out"
    state = xtract_endpoint(globus_endpoint(globus, data, ids, out), extraction=ExtractionOptions(workers=2),
                            return_state=True)
    assert state.is_completed(), state.message
    summary = state.result()
    assert summary["dirs_failed"] == 1 and summary["files_crawled"] == 4
    idx = check_contract(out, expected_files=4)
    assert str(files["t3"]) not in set(idx["path"]) and str(files["t1"]) in set(idx["path"])


@pytest.mark.slow
def test_globus_flow_failed_staging_is_retried_and_nothing_lost(globus, setup, tmp_path):
    data, _, ids, _ = setup
    globus.service.transfer.behaviours.append(TransferBehaviour("fail", "staging", "PERMISSION_DENIED"))
    out = tmp_path / "out"
    state = xtract_endpoint(globus_endpoint(globus, data, ids, out),
                            extraction=ExtractionOptions(workers=2, batch_size=3), return_state=True)
    assert state.is_completed(), state.message
    idx = check_contract(out, expected_files=6)
    assert set(idx["status"]) <= {"ok", "unknown", "error"} and (idx["status"] == "error").sum() == 1
    assert not globus.service.transfer.behaviours  # the failure happened, and the batch was redone


@pytest.mark.parametrize("mode,error", [("hang", "TransferTimeout"), ("fail", "TransferFailed")])
def test_globus_flow_offload_that_hangs_or_fails_fails_the_run_keeping_metadata(globus, setup, tmp_path, mode, error):
    data, _, ids, dest = setup
    t = globus.service.transfer
    t.behaviours.append(TransferBehaviour(mode, "metadata offload"))
    out = tmp_path / "out"
    state = xtract_endpoint(globus_endpoint(globus, data, ids, out),
                            extraction=ExtractionOptions(workers=2, transfer_timeout_s=2),
                            offload_to=OffloadOptions(dest_path="/runs", dest_endpoint_id=ids["dest"],
                                                      delete_source=True),
                            return_state=True)
    assert state.is_failed()
    assert error in state.message or error in repr(state.result(raise_on_failure=False))
    check_contract(out, expected_files=6)  # the local metadata was not deleted
    offloads = [task for task in t.tasks.values() if "offload" in task.doc["label"]]
    assert offloads and offloads[-1].doc["status"] == "FAILED"
    if mode == "hang":
        assert offloads[-1].doc["fatal_error"]["code"] == "CANCELED"
    assert not (dest / "runs").exists() or not any((dest / "runs").rglob("index.parquet"))
