"""The HTML report: built from a real run's metadata, self-contained, linked, capped; published by the flow."""

from __future__ import annotations

import json
import os
import pathlib
import re
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

from flows.cli import main
from flows.endpoint_flow import xtract_endpoint
from flows.report import ReportError, build_report
from flows.report.aggregate import summarize
from tasks.pools.options import ExtractionOptions
from tests.helpers import small_corpus, write_csv
from xtract_blocks import XtractEndpoint

CHART_IDS = ["files-by-type", "bytes-by-type", "files-by-extractor", "bytes-by-extractor", "size-distribution",
             "mtime-timeline", "outcomes", "outcomes-by-extractor", "error-types", "largest-files", "busiest-dirs",
             "biggest-dirs"]


def richer_corpus(root: pathlib.Path) -> None:
    """The small corpus plus more directories, sizes and ages, so every chart has several bars."""
    small_corpus(root)
    for i in range(6):
        write_csv(root / "runs" / f"r{i}" / f"table{i}.csv", rows=10 * (i + 1) ** 2)
        (root / "runs" / f"r{i}" / "log.txt").write_text("line\n" * (50 * i + 1))
    (root / "big.bin").write_bytes(os.urandom(300_000))
    (root / "empty.dat").write_bytes(b"")
    old = time.time() - 400 * 86400
    os.utime(root / "runs" / "r0" / "table0.csv", (old, old))


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    richer_corpus(root / "data")
    ep = XtractEndpoint(dirs=[str(root / "data")], local_mdata_path=str(root / "out"))
    state = xtract_endpoint(ep, extraction=ExtractionOptions(workers=2), return_state=True)
    assert state.is_completed(), state.message
    return root / "out", state.result(), ep.slug()


def embedded_rows(html: str) -> dict:
    block = re.search(r'<script type="application/json" id="index-data">(.*?)</script>', html, re.S)
    assert block, "the index table's data block is missing"
    return json.loads(block.group(1))


def test_flow_writes_the_report_and_publishes_link_and_headline_charts(ran):
    out, summary, slug = ran
    assert summary["report"] == str(out / "report.html") and (out / "report.html").stat().st_size > 5000
    with get_client(sync_client=True) as client:
        arts = client.read_artifacts(artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[summary["flow_run_id"]])))
    by_key = {a.key: a for a in arts}
    link = by_key[f"{slug}-report"]
    assert f"(file://{out / 'report.html'})" in link.data  # Prefect stores a link artifact as markdown
    for chart in ("outcomes-by-extractor", "files-by-type"):
        image = by_key[f"{slug}-chart-{chart}"]
        assert image.type == "image" and image.data.startswith("data:image/svg+xml;base64,")
    md = by_key[f"{slug}-summary"].data
    assert "report: `" in md and "| tabular |" in md


def test_report_is_self_contained_and_every_chart_has_marks(ran):
    out, summary, _ = ran
    html = (out / "report.html").read_text()
    # nothing to fetch: no external URL anywhere but the SVG namespace, no src= at all
    urls = set(re.findall(r"https?://[^\s\"'<>)]+", html)) - {"http://www.w3.org/2000/svg"}
    assert not urls, urls
    assert " src=" not in html and "@import" not in html and "url(" not in html
    for cid in CHART_IDS:
        fig = re.search(rf'<figure class="chart" id="chart-{cid}">(.*?)</figure>', html, re.S)
        assert fig, cid
        assert re.search(r'<rect class="bar"[^>]* width="[1-9]', fig.group(1)), f"chart {cid} has no bar"
    data = embedded_rows(html)
    assert len(data["rows"]) == summary["files_crawled"] == 20
    assert data["groups_href"] == "groups"
    for row in data["rows"]:  # each row links to an existing group document holding that file
        doc = json.loads((out / data["groups_href"] / f"{row[7]}.json").read_text())
        assert row[0] in {f["path"] for f in doc["files"]}


def test_figures_match_the_index(ran):
    out, summary, _ = ran
    facts = summarize(str(out))
    assert facts["files"] == 20 and facts["status"]["error"] == summary["failed"] == 1
    assert sum(r["files"] for r in facts["by_type"]) == 20
    assert {r["label"] for r in facts["by_type"]} >= {"csv", "txt", "bin", "dat"}
    assert facts["size_hist"]["zero"] == 1 and sum(facts["size_hist"]["files"]) == 19
    assert facts["timeline"]["unit"] == "month" and sum(facts["timeline"]["files"]) == 20
    assert facts["largest"][0]["path"].endswith("big.bin") and facts["largest"][0]["bytes"] == 300_000
    top = facts["errors"]["top"][0]
    assert top["example"].endswith("broken.csv") and top["files"] == 1 and top["extractor"]
    assert facts["dirs"]["by_files"][0]["files"] == 3  # data/a holds t1, t2, notes.txt
    assert facts["root"].endswith("/data/")


def test_report_elsewhere_links_back_into_out(ran, tmp_path):
    out, _, _ = ran
    target = tmp_path / "site" / "nested" / "r.html"
    report = build_report(str(out), str(target))
    data = embedded_rows(target.read_text())
    assert report.path == str(target) and data["groups_href"].startswith("../")
    first = data["rows"][0]
    assert (target.parent / data["groups_href"] / f"{first[7]}.json").resolve().is_file()


def test_cli_report_command(ran, tmp_path, capsys):
    out, _, _ = ran
    target = tmp_path / "cli.html"
    assert main(["report", str(out), "--html", str(target), "--max-rows", "5"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith(f"report: {target}  (20 files, 5 table rows,")
    assert len(embedded_rows(target.read_text())["rows"]) == 5
    assert main(["report", str(tmp_path / "nothing-here")]) == 2
    assert "no index.parquet" in capsys.readouterr().err


def write_index(out: pathlib.Path, n: int) -> None:
    """A real index.parquet of ``n`` rows (what a large run leaves), without running the extractors."""
    rng = np.random.default_rng(7)
    exts = np.array(["csv", "nc", "h5", "txt", "", "json", "png", "tif", "xml", "dat", "py", "gz", "zip", "md",
                     "log", "bam", "fits", "jpg"])
    ext = exts[rng.integers(0, len(exts), n)]
    dirs = np.array([f"/repo/p{i % 13}/d{i}" for i in range(400)])[rng.integers(0, 400, n)]
    status = np.array(["ok", "error", "unknown", "skipped"])[rng.choice(4, n, p=[0.85, 0.03, 0.07, 0.05])]
    paths = [f"{d}/f{i:07d}.{e}" if e else f"{d}/f{i:07d}" for i, (d, e) in enumerate(zip(dirs, ext, strict=True))]
    order = np.argsort(paths)
    table = pa.table({
        "path": np.array(paths)[order], "size": (10 ** rng.uniform(0, 10, n)).astype("int64")[order],
        "mtime": (1.4e9 + rng.uniform(0, 3e8, n))[order], "extension": ext[order], "mime": ["x"] * n,
        "extractor": np.where(ext == "csv", "tabular", "physical")[order], "group_id": [f"g{i:023d}" for i in order],
        "status": status[order],
        "error": np.where(status == "error", [f"ValueError: bad value {i % 5} in row {i}" for i in range(n)],
                          None)[order],
    })
    (out / "groups").mkdir(parents=True)
    pq.write_table(table, out / "index.parquet")


def test_large_index_is_aggregated_and_the_table_capped(tmp_path):
    out = tmp_path / "big"
    write_index(out, 200_000)
    started = time.perf_counter()
    report = build_report(str(out), max_rows=2000)
    seconds = time.perf_counter() - started
    html = pathlib.Path(report.path).read_text()
    rows = embedded_rows(html)["rows"]
    assert len(rows) == report.table_rows == 2000 and report.files == 200_000
    n_err = sum(1 for r in rows if r[5] == "error")
    assert n_err == 1000 and all(r[5] == "error" for r in rows[:n_err])  # failures first, then the largest
    sizes = [r[1] for r in rows[n_err:]]
    assert sizes == sorted(sizes, reverse=True)
    assert "2,000 of 200,000 files" in html
    assert len(html) < 2_000_000, "the page embeds summaries, never the whole index"
    facts = summarize(str(out), max_rows=10)
    assert facts["by_type"][-1]["label"].startswith("other types") and len(facts["by_type"]) == 16
    assert facts["errors"]["top"][0]["key"] == "ValueError: bad value N in row N"
    print(f"report of 200,000 rows: {seconds:.1f}s, {len(html) / 1024:.0f} KB")


def test_missing_index_is_a_clear_error(tmp_path):
    with pytest.raises(ReportError, match="no index.parquet"):
        build_report(str(tmp_path))
