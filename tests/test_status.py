"""``xtract status`` against the real Prefect API, and the status artifacts' tables."""

from __future__ import annotations

import json

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import ArtifactCreate
from prefect.states import Running

from flows.cli import main
from flows.endpoint_flow import xtract_endpoint
from tasks.counters import XtractCounters
from tasks.pools.options import ExtractionOptions
from tasks.status import cap_rows, counter_rows, crawl_status_row, extractor_table, progress_text
from tasks.units import human_bytes, human_count, human_duration, human_rate
from tests.helpers import small_corpus
from xtract_blocks import XtractEndpoint


def test_human_units():
    assert [human_bytes(n) for n in (0, 1023, 1536, 5 * 1024**3)] == ["0 B", "1023 B", "1.5 KB", "5.0 GB"]
    assert human_count(1234567) == "1,234,567"
    assert [human_duration(s) for s in (None, 3.21, 83.2, 7322)] == ["-", "3.2s", "1m 23s", "2h 02m"]
    assert human_rate(0, 5, "files") == "-" and human_rate(50_000, 2, "files") == "25,000 files/s"


def test_tables_keep_raw_numbers_beside_human_ones_and_cap_rows():
    row = crawl_status_row("run-1", {"files": 1_234_567, "bytes": 3 * 1024**4, "dirs": 900, "dirs_failed": 2,
                                     "seconds": 95.0}, groups=1_200_000)
    assert row["files_crawled"] == 1_234_567 and row["bytes_crawled"] == 3 * 1024**4  # API readers parse these
    assert row["size"] == "3.0 TB" and row["duration"] == "1m 35s" and row["rate"] == "12,995 files/s"
    assert row["message"] == "2 directories could not be listed" and row["groups_crawled"] == 1_200_000

    errs = [{"path": f"/d/{i:03d}", "error": "PermissionError"} for i in range(120)]
    shown = cap_rows(errs, total=5000, limit=50)
    assert len(shown) == 51 and shown[-1] == {"path": "... and 4,950 more", "error": ""}
    assert cap_rows(errs[:3]) == errs[:3]

    c = XtractCounters(groups_total=1000, cumu_orch_enter=1000, cumu_scheduled=900, fx_success=850, fx_failed=40,
                       groups_skipped=60, files_ok=20_000)
    rows = counter_rows(c)
    values = {r["counter"]: r["value"] for r in rows}
    assert values["fx.success"] == 850 and values["cumu_to_schedule"] == 40 and values["files_ok"] == 20_000
    assert all(isinstance(r["value"], int) and r["meaning"] for r in rows)
    assert next(r for r in rows if r["counter"] == "files_ok")["shown"] == "20,000"
    assert progress_text(c, 10.0) == "950 of 1,000 groups · 89 groups/s · ETA 0.6s · 40 failed · 60 done earlier"

    by_ex = {f"ex{i:02d}": {"ok": i, "error": 1} for i in range(30)}
    lines = extractor_table(by_ex, limit=25)
    assert lines[2].startswith("| ex29 | 29 | 1 |")  # busiest first
    assert len(lines) == 2 + 25 + 1 and lines[-1].startswith("| ... and 5 more |")


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("status")
    small_corpus(root / "data")
    ep = XtractEndpoint(dirs=[str(root / "data")], local_mdata_path=str(root / "out"))
    state = xtract_endpoint(ep, extraction=ExtractionOptions(workers=2), return_state=True)
    assert state.is_completed(), state.message
    return state.result()


def test_status_of_a_finished_run_by_id(finished_run, capsys):
    assert main(["status", finished_run["flow_run_id"], "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["flow_run_id"] == finished_run["flow_run_id"] and s["state"] == "Completed" and s["final"]
    assert s["message"].startswith("6 files in 6 groups")
    assert [t["name"] for t in s["stages"]][:2] == ["crawl", "group"] and "xtract" in [t["name"] for t in s["stages"]]
    assert all(t["state"] == "Completed" for t in s["stages"])
    assert s["progress"]["percent"] == pytest.approx(100.0) and "6 of 6 groups" in s["progress"]["description"]
    assert s["crawl"]["files_crawled"] == 6 and s["crawl"]["size"] == "2.3 KB"
    assert s["counters"]["fx.success"] == 5 and s["counters"]["fx.failed"] == 1
    assert s["report"] == f"file://{finished_run['report']}"
    assert len(s["charts"]) == 2


def test_status_without_id_shows_the_latest_run_as_text(finished_run, capsys):
    assert main(["status"]) == 0
    text = capsys.readouterr().out
    assert f"({finished_run['flow_run_id']})" in text.splitlines()[0]
    assert "state     Completed: 6 files in 6 groups" in text
    assert "files     extracted " in text and "failed 1" in text and "report    file://" in text
    assert "stages    crawl ✓" in text


def test_status_of_a_running_run_reads_its_progress(finished_run, capsys):
    with get_client(sync_client=True) as client:
        flow_run = client.create_flow_run(xtract_endpoint, name="still-going", state=Running())
        client.create_artifact(ArtifactCreate(type="progress", data=40.0, key="ep-progress", flow_run_id=flow_run.id,
                                              description="ep: 400 of 1,000 groups · 12 groups/s · ETA 50.0s"))
        client.create_artifact(ArtifactCreate(type="table", key="ep-xtract-counters", flow_run_id=flow_run.id,
                                              data=json.dumps([{"counter": "fx.success", "value": 390},
                                                               {"counter": "fx.failed", "value": 10}])))
    assert main(["status", str(flow_run.id)]) == 0
    text = capsys.readouterr().out
    assert "state     Running" in text and "so far" in text
    assert "progress  40%  ep: 400 of 1,000 groups · 12 groups/s · ETA 50.0s" in text
    assert "groups ok 390 · groups failed 10" in text
    assert main(["status"]) == 0  # the newest run is now the running one
    assert "still-going" in capsys.readouterr().out


def test_status_rejects_bad_and_unknown_ids(capsys):
    assert main(["status", "not-a-uuid"]) == 2
    assert "not a flow run id" in capsys.readouterr().err
    assert main(["status", "00000000-0000-4000-8000-000000000000"]) == 2
    assert "no flow run 00000000-0000-4000-8000-000000000000" in capsys.readouterr().err
