"""Data without compute on Globus Compute: staging to the compute endpoint's collection, and large results.

The data collection, the compute endpoint's collection, this machine's collection and
the archive are endpoints of the loopback Transfer service, each backed by a real
directory; the compute endpoint is a real ``globus-compute-endpoint`` on this machine reached
through the SDK's own Executor (``tests/compute_service``: its workers import only ``extractors``),
so the compute collection's directory is what its workers read (``collection_root``).
"""

from __future__ import annotations

import json
import os
import pathlib
import uuid

import pandas as pd
import pytest

from flows.endpoint_flow import xtract_endpoint
from tasks.habitats.globus_transfer import StagingConfig
from tasks.offload import OffloadOptions
from tasks.pools.base import ComputeOptions, PoolSpec
from tasks.pools.globus_compute.remote_results import RemoteResults
from tasks.pools.options import ExtractionOptions
from tasks.pools.plan import open_pool
from tasks.store.journal import StateStore
from tasks.xtract import ExtractionRun, make_batches
from tests.globus_service.testing import Loopback
from tests.helpers import check_contract, load_group, small_corpus, write_csv
from xtract_blocks import GlobusComputeSettings, XtractEndpoint

#: with payload_limit_bytes=30_000 the result budget is 27,000 bytes; this table's metadata is ~38 KB
LIMIT = 30_000


@pytest.fixture
def globus(compute_loop):
    """The loopback Globus service the compute loop authenticates with, also serving Transfer here."""
    return Loopback(compute_loop.globus, compute_loop.credentials(), compute_loop.client_id,
                    compute_loop.client_secret)


def wide_csv(path: pathlib.Path, cols: int = 300, rows: int = 20) -> pathlib.Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [",".join(f"c{i}" for i in range(cols))] + [",".join(str(r * i) for i in range(cols)) for r in range(rows)]
    path.write_text("\n".join(lines) + "\n")
    return path


def whole_seconds(paths) -> None:
    """Transfer lists mtimes to the second: give the files whole-second mtimes, as a real collection would."""
    for i, p in enumerate(sorted(paths)):
        os.utime(p, (1_700_000_000 + i, 1_700_000_000 + i))


def group_of(path: pathlib.Path, gid: str) -> dict:
    st = path.stat()
    return {"group_id": gid, "fingerprint": "fp", "endpoint": "data-ep", "extractor": None,
            "files": [{"path": str(path), "size": st.st_size, "mtime": st.st_mtime,
                       "extension": path.suffix.lstrip("."), "mime": None, "extractor": None}]}


def files_under(root: pathlib.Path) -> list[pathlib.Path]:
    return [p for p in root.rglob("*") if not p.is_dir()]


def real(**kw) -> GlobusComputeSettings:
    """Settings for the SDK backend (the real endpoint of the compute loop)."""
    return GlobusComputeSettings(backend="sdk", registry_block=f"reg-{uuid.uuid4().hex[:12]}",
                                 payload_limit_bytes=LIMIT, **kw)


def labels(globus, kind: str, contains: str) -> list[str]:
    return [t.doc["label"] for t in globus.service.transfer.tasks.values()
            if t.doc["type"] == kind and contains in t.doc["label"]]


def test_compute_staging_flow_data_without_compute(globus, compute_loop, tmp_path):
    """Stage to the compute endpoint's collection under a byte cap, extract there, clean up, bring an
    oversized document home, offload; the index equals a local run over the same files."""
    data = tmp_path / "data"
    files = small_corpus(data)
    files["wide"] = wide_csv(data / "a" / "wide.csv")
    whole_seconds(files.values())
    corpus_bytes = sum(p.stat().st_size for p in files.values())
    compute_fs, dest = tmp_path / "compute-fs", tmp_path / "archive"
    compute_fs.mkdir()
    dest.mkdir()
    t = globus.service.transfer
    ids = {"data": t.add_endpoint("/"), "local": t.add_endpoint("/"), "compute": t.add_endpoint(str(compute_fs)),
           "dest": t.add_endpoint(str(dest))}
    settings = real(endpoint_id=compute_loop.endpoint_id, collection_id=ids["compute"],
                       collection_root=str(compute_fs), staging_path="/staging", remote_mdata_path="/remote-md",
                       staging_bytes=corpus_bytes // 3)
    out = tmp_path / "out"
    ep = XtractEndpoint(repo_type="globus", globus_ep_id=ids["data"], local_ep_id=ids["local"], dirs=[str(data)],
                        local_mdata_path=str(out), credentials=globus.credentials)
    state = xtract_endpoint(ep,
                            extraction=ExtractionOptions(executor="globus-compute", workers=2, batch_size=3),
                            compute_settings=settings,
                            offload_to=OffloadOptions(dest_path="/runs", dest_endpoint_id=ids["dest"]),
                            return_state=True)
    assert state.is_completed(), state.message
    summary = state.result()

    local_out = tmp_path / "out-local"
    local = xtract_endpoint(XtractEndpoint(dirs=[str(data)], local_mdata_path=str(local_out)),
                            extraction=ExtractionOptions(workers=2), return_state=True)
    assert local.is_completed(), local.message
    idx, idx_local = check_contract(out, expected_files=7), check_contract(local_out, expected_files=7)
    pd.testing.assert_frame_equal(idx, idx_local)
    for key in ("t2", "wide", "bad"):
        doc, doc_local = load_group(out, idx, files[key]), load_group(local_out, idx_local, files[key])
        assert doc["metadata"] == doc_local["metadata"] and doc["errors"] == doc_local["errors"]
        assert doc["endpoint"] == ids["data"]  # the only difference from the local run
    assert len(load_group(out, idx, files["wide"])["metadata"]["tabular"]["columns"]) == 300
    assert summary["xtract_counters"]["fx"] == {"pending": 0, "success": 6, "failed": 1}
    for g in (out / "groups").glob("*.json"):  # metadata names the original paths only
        assert str(compute_fs) not in g.read_text()

    # staging went to the compute collection in several rounds (the cap is a third of the corpus), every
    # round was deleted there by DeleteData, and the oversized document came back by transfer
    staging_tasks = [x for x in globus.service.transfer.tasks.values() if "staging" in x.doc["label"]
                     and x.doc["destination_endpoint_id"] == ids["compute"]]
    assert len(staging_tasks) >= 4
    assert all(x.doc["status"] == "SUCCEEDED" for x in staging_tasks)
    assert len(labels(globus, "DELETE", "unstage")) >= len(staging_tasks)
    assert len(labels(globus, "TRANSFER", "large results")) == 1
    assert files_under(compute_fs) == [], "staged copies or remote documents were left on the compute endpoint"
    assert not (out / ".xtract" / "remote-results").exists() or files_under(out / ".xtract" / "remote-results") == []
    archived = dest / summary["offload_path"].lstrip("/")
    check_contract(archived, expected_files=7)


def test_compute_staging_cap_rounds_and_prefetch_overlap(globus, compute_loop, tmp_path):
    """A cap of a quarter of the corpus: many staging rounds, never more than the cap staged at once,
    staging of later rounds overlapping extraction of earlier ones, and every group extracted."""
    data = tmp_path / "data"
    paths = [write_csv(data / f"d{i % 3}" / f"t{i}.csv", rows=40 + i) for i in range(12)]
    whole_seconds(paths)
    corpus_bytes = sum(p.stat().st_size for p in paths)
    cap = corpus_bytes // 4
    compute_fs = tmp_path / "compute-fs"
    compute_fs.mkdir()
    t = globus.service.transfer
    data_ep, compute_ep = t.add_endpoint("/"), t.add_endpoint(str(compute_fs))
    config = StagingConfig(credentials=globus.credentials, source_ep=data_ep, local_ep=compute_ep,
                           staging_dir=str(compute_fs / "staging"), local_ep_root=str(compute_fs),
                           poll_interval_s=0.2, remote=True, max_bytes=cap, max_staged=3)
    settings = real()
    spec = PoolSpec(kind="globus-compute", workers=2, staging=config,
                    compute=ComputeOptions(compute_loop.endpoint_id, settings, globus.credentials))
    out = tmp_path / "out"
    (out / "groups").mkdir(parents=True)
    state = StateStore(str(out / ".xtract"))
    t.copy_delay_s = 0.2  # a transfer takes time, as a real one does: overlap has something to hide
    pool = open_pool(spec)
    try:
        run = ExtractionRun(pool, state, "run-1", str(out), limit_s=20.0, max_retries=1, poll_s=0.1)
        counters = run.run(make_batches(iter(group_of(p, f"g{i}") for i, p in enumerate(paths)), max_groups=4),
                           max_in_flight=4)
    finally:
        t.copy_delay_s = 0.0
        pool.close()
        state.close()
    stats = pool.stats
    print(f"\nstaging: {stats.rounds} rounds, {stats.bytes_staged} of {corpus_bytes} bytes, cap {cap}, "
          f"peak {stats.peak_bytes} bytes / {stats.peak_batches} batches, overlap {stats.overlap_s():.2f}s")
    assert counters.fx_success == 12 and counters.fx_failed == 0 and counters.retries == 0
    docs = {p.stem: json.loads(p.read_text()) for p in (out / "groups").glob("*.json")}
    assert set(docs) == {f"g{i}" for i in range(12)}
    assert all(d["files"][0]["path"] == str(paths[int(k[1:])]) for k, d in docs.items())
    assert stats.rounds >= 8 and stats.bytes_staged == corpus_bytes
    assert stats.peak_bytes <= cap and stats.peak_batches >= 2
    assert stats.overlap_s() > 0
    assert stats.cleanup_failures == 0 and files_under(compute_fs) == []


def test_compute_oversized_result_written_remotely_and_transferred_back(globus, compute_loop, tmp_path):
    """A group over the result limit comes back through the remote-write path; without one it is an error."""
    data = tmp_path / "data"
    groups = [group_of(wide_csv(data / "wide.csv"), "wide"), group_of(write_csv(data / "small.csv"), "small")]
    compute_fs = tmp_path / "compute-fs"
    compute_fs.mkdir()
    t = globus.service.transfer
    compute_ep, local_ep = t.add_endpoint(str(compute_fs)), t.add_endpoint("/")
    out = tmp_path / "out"
    remote = RemoteResults(credentials=globus.credentials, collection_id=compute_ep, collection_root=str(compute_fs),
                           remote_path="/remote-md", local_ep=local_ep, local_dir=str(out / ".xtract" / "fetch"),
                           poll_interval_s=0.2)

    def run(options: dict) -> dict[str, dict]:
        target = out / uuid.uuid4().hex
        (target / "groups").mkdir(parents=True)
        state = StateStore(str(target / ".xtract"))
        pool = open_pool(PoolSpec(kind="globus-compute", workers=1,
                                  compute=ComputeOptions(compute_loop.endpoint_id, real(), globus.credentials,
                                                         **options)))
        try:
            ExtractionRun(pool, state, "run-1", str(target), limit_s=20.0, poll_s=0.1).run(
                make_batches(iter(groups), max_groups=2), max_in_flight=1)
        finally:
            pool.close()
            state.close()
        return {p.stem: json.loads(p.read_text()) for p in (target / "groups").glob("*.json")}

    fetched_before = len(labels(globus, "TRANSFER", "large results"))
    docs = run({"remote_results": remote})
    assert docs["wide"]["errors"] == [] and len(docs["wide"]["metadata"]["tabular"]["columns"]) == 300
    assert len(json.dumps(docs["wide"])) > LIMIT  # it could not have come back as a task result
    assert docs["small"]["metadata"]["tabular"]["rows"] == 3
    assert len(labels(globus, "TRANSFER", "large results")) == fetched_before + 1
    assert files_under(compute_fs) == []
    assert not (out / ".xtract" / "fetch").exists() or files_under(out / ".xtract" / "fetch") == []

    dropped = run({})  # no way home: the group keeps its per-file outcome and loses its metadata
    assert dropped["wide"]["metadata"] == {} and dropped["wide"]["errors"][0]["type"] == "ResultTooLarge"
    assert dropped["small"]["errors"] == []
