"""Transfer helper, offload by transfer and Search ingest against the loopback service."""

from __future__ import annotations

import json
import time

import pytest

from tasks.habitats.globus_offload import offload_by_transfer
from tasks.habitats.globus_search import SearchIngestError, ingest_metadata, iter_entries
from tasks.habitats.globus_transfer import TransferFailed, TransferTimeout, transfer_and_wait
from tests.globus_service import TransferBehaviour
from tests.globus_service.testing import loopback_globus
from tests.helpers import small_corpus


@pytest.fixture(scope="module")
def globus():
    with loopback_globus() as lb:
        yield lb


@pytest.fixture
def eps(globus, tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    small_corpus(src)
    dst.mkdir()
    t = globus.service.transfer
    return t.add_endpoint(str(src)), t.add_endpoint(str(dst)), src, dst


def test_globus_transfer_copies_then_deletes_source(globus, eps):
    src_ep, dst_ep, src, dst = eps
    client = globus.credentials.get_transfer_client()
    res = transfer_and_wait(client, src_ep, dst_ep, [("/a", "/copy/a", True), ("/blob.bin", "/copy/blob.bin", False)],
                            timeout_s=20, poll_interval_s=0.1, delete_source=True)
    assert res.files_transferred == 6 and res.delete_task_id
    assert (dst / "copy" / "a" / "b" / "t3.csv").read_text().startswith("x,y,name")
    assert (dst / "copy" / "blob.bin").stat().st_size == 2048
    assert not (src / "a").exists() and not (src / "blob.bin").exists()
    # the submission id makes a retried submit safe: the service answers with the same task
    again = client.submit_transfer({"DATA_TYPE": "transfer", "submission_id": res.submission_id,
                                    "source_endpoint": src_ep, "destination_endpoint": dst_ep,
                                    "DATA": [{"DATA_TYPE": "transfer_item", "source_path": "/x",
                                              "destination_path": "/y"}]})
    assert again["code"] == "Duplicate" and again["task_id"] == res.task_id


def test_globus_transfer_failed_task_raises_and_keeps_source(globus, eps):
    src_ep, dst_ep, src, _ = eps
    globus.service.transfer.behaviours.append(TransferBehaviour("fail", "doomed", "PERMISSION_DENIED"))
    client = globus.credentials.get_transfer_client()
    with pytest.raises(TransferFailed, match="FAILED: PERMISSION_DENIED") as info:
        transfer_and_wait(client, src_ep, dst_ep, [("/a", "/a", True)], label="doomed", timeout_s=20,
                          poll_interval_s=0.1, delete_source=True)
    assert info.value.task_id and (src / "a" / "t1.csv").exists()


def test_globus_transfer_that_never_finishes_is_cancelled(globus, eps):
    src_ep, dst_ep, src, _ = eps
    t = globus.service.transfer
    t.behaviours.append(TransferBehaviour("hang", "stuck"))
    client = globus.credentials.get_transfer_client()
    started = time.monotonic()
    with pytest.raises(TransferTimeout, match=r"not done after 2s .*CONNECTION_FAILED.*cancelled") as info:
        transfer_and_wait(client, src_ep, dst_ep, [("/a", "/a", True)], label="stuck", timeout_s=2,
                          poll_interval_s=0.2, delete_source=True)
    assert 2 <= time.monotonic() - started < 6
    doc = t.tasks[info.value.task_id].doc
    assert doc["status"] == "FAILED" and doc["fatal_error"]["code"] == "CANCELED"
    assert (src / "a" / "t1.csv").exists()
    # a fault that persists fails sooner than the overall timeout
    t.behaviours.append(TransferBehaviour("hang", "faulty", "PERMISSION_DENIED"))
    with pytest.raises(TransferTimeout, match="kept faulting for 1s"):
        transfer_and_wait(client, src_ep, dst_ep, [("/a", "/a", True)], label="faulty", timeout_s=30,
                          poll_interval_s=0.2, fault_timeout_s=1)


def test_globus_offload_every_endpoint_under_timestamp(globus, tmp_path):
    local_ep = globus.service.transfer.add_endpoint("/")
    dest = tmp_path / "dest"
    dest.mkdir()
    dest_ep = globus.service.transfer.add_endpoint(str(dest))
    sources = {}
    for name in ("alpha", "beta"):
        out = tmp_path / name
        (out / "groups").mkdir(parents=True)
        (out / "groups" / f"{name}.json").write_text("{}")
        (out / "index.parquet").write_bytes(b"PAR1")
        (out / ".xtract").mkdir()
        sources[name] = str(out)
    res = offload_by_transfer(globus.credentials, sources, local_ep, dest_ep, "/archive", poll_interval_s=0.1,
                              delete_source=True, timeout_s=20)
    stamp = res["path"].rsplit("/", 1)[1]
    assert res["path"].startswith("/archive/") and len(stamp) == len("2024-01-01-00:00:00")
    for name in ("alpha", "beta"):
        assert (dest / "archive" / stamp / name / "groups" / f"{name}.json").exists()
        assert (dest / "archive" / stamp / name / "index.parquet").exists()
        assert not (tmp_path / name / "index.parquet").exists() and (tmp_path / name / ".xtract").exists()


def test_globus_search_ingest_batches_subjects_and_failure(globus, tmp_path):
    out = tmp_path / "out"
    (out / "groups").mkdir(parents=True)
    for i in range(30):
        doc = {"group_id": f"g{i:02d}", "files": [{"path": f"/data/f{i:02d}.csv"}], "metadata": {"pad": "z" * 400},
               "endpoint": "ep-1"}
        (out / "groups" / f"g{i:02d}.json").write_text(json.dumps(doc))
    huge = {"group_id": "huge", "files": [{"path": "/data/huge"}], "metadata": {"pad": "z" * 50_000},
            "endpoint": "ep-1"}
    (out / "groups" / "huge.json").write_text(json.dumps(huge))
    search = globus.service.search
    index = search.add_index()
    client = globus.credentials.get_search_client()
    before = search.ingest_requests
    report = ingest_metadata(client, index, iter_entries(str(out), "ep-1", ["public"]), max_bytes=4000,
                             poll_interval_s=0.05)
    assert report.entries == 30 and report.too_large == ["globus://ep-1/data/huge"]
    assert report.batches == search.ingest_requests - before and report.batches >= 5
    stored = search.indices[index]
    assert ("globus://ep-1/data/f07.csv", "") in stored and len(stored) == 30
    assert stored[("globus://ep-1/data/f07.csv", "")]["visible_to"] == ["public"]
    search.fail_ingest = True
    try:
        with pytest.raises(SearchIngestError, match="FAILED"):
            ingest_metadata(client, index, iter_entries(str(out), "ep-1", ["public"]), poll_interval_s=0.05)
    finally:
        search.fail_ingest = False
