"""Downloaders against a loopback HTTP server with Range support, and fsspec filesystems; the https habitat run."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess

import fsspec
import pytest

from flows.endpoint_flow import xtract_endpoint
from tasks.habitats import download_files
from tasks.habitats.download import local_target
from tasks.pools.options import ExtractionOptions
from tasks.store.index import items_from_index
from tasks.store.search import search
from tests.helpers import check_contract, write_csv
from tests.loopback_http import LoopbackServer
from xtract_blocks import HttpCredentials, XtractEndpoint
from xtract_blocks.errors import DownloadError


def _payload(root: pathlib.Path) -> dict[str, bytes]:
    data = {"big/blob.bin": os.urandom(3 * 1024 * 1024 + 17), "a.txt": b"spectrometer calibration notes\n",
            "c/d/e.csv": b"x,y\n1,2\n"}
    for rel, body in data.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(body)
    return data


def _items(url: str, data: dict[str, bytes]) -> list[tuple[str, int | None, float | None]]:
    return [(url + rel, len(body), None) for rel, body in data.items()]


def test_http_download_resumes_a_dropped_transfer_with_a_range_request(tmp_path: pathlib.Path) -> None:
    data = _payload(tmp_path / "srv")
    with LoopbackServer(str(tmp_path / "srv")) as srv:
        srv.state.cut_once["/big/blob.bin"] = 1_000_000
        report = download_files(_items(srv.url, data), str(tmp_path / "dest"), concurrency=2)
        assert (report.fetched, report.failed, report.resumed) == (3, 0, 1), report.errors
        [(path, rng)] = srv.state.ranges
        assert path == "/big/blob.bin" and 1_000_000 - 65536 <= int(rng[6:-1]) <= 1_000_000
        # only what was lost in the last network read is fetched twice
        assert srv.state.bytes_sent["/big/blob.bin"] <= len(data["big/blob.bin"]) + 65536
    host = srv.url.split("/")[2].replace(":", "_")
    for rel, body in data.items():
        assert (tmp_path / "dest" / host / rel).read_bytes() == body
    assert not list((tmp_path / "dest").rglob("*.part*"))


def test_a_partial_file_left_by_a_failed_run_is_resumed_by_the_next(tmp_path: pathlib.Path) -> None:
    data = _payload(tmp_path / "srv")
    with LoopbackServer(str(tmp_path / "srv")) as srv:
        srv.state.cut_once["/big/blob.bin"] = 2_000_000
        first = download_files(_items(srv.url, data), str(tmp_path / "dest"), attempts=1)
        assert first.failed == 1 and "rerun to resume" in first.errors[0]["error"]
        assert list((tmp_path / "dest").rglob("blob.bin.part"))[0].stat().st_size >= 2_000_000 - 65536
        second = download_files(_items(srv.url, data), str(tmp_path / "dest"))
        assert (second.fetched, second.skipped, second.resumed, second.failed) == (1, 2, 1, 0)
        assert srv.state.requests[("GET", "/a.txt")] == 1  # already present: not fetched again
    assert next((tmp_path / "dest").rglob("blob.bin")).read_bytes() == data["big/blob.bin"]


def test_checksums_from_the_server_are_verified_and_a_mismatch_is_not_kept(tmp_path: pathlib.Path) -> None:
    data = _payload(tmp_path / "srv")
    with LoopbackServer(str(tmp_path / "srv")) as srv:
        srv.state.digest = True
        srv.state.wrong_digest.add("/a.txt")
        report = download_files(_items(srv.url, data), str(tmp_path / "dest"))
    assert (report.fetched, report.verified, report.failed) == (2, 2, 1)
    assert "does not match" in report.errors[0]["error"] and report.errors[0]["path"].endswith("a.txt")
    assert not list((tmp_path / "dest").rglob("a.txt*"))


def test_bearer_token_downloads_and_missing_files_are_reported(tmp_path: pathlib.Path) -> None:
    data = _payload(tmp_path / "srv")
    with LoopbackServer(str(tmp_path / "srv")) as srv:
        srv.state.token = "tkn-123"
        ep = XtractEndpoint(repo_type="https", dirs=[srv.url], http=HttpCredentials(bearer_token="tkn-123"))
        items = [*_items(srv.url, data), (srv.url + "gone.nc", 5, None)]
        report = download_files(items, str(tmp_path / "dest"), endpoint=ep)
    assert (report.fetched, report.failed) == (3, 1)
    assert "404" in report.errors[0]["error"] and "tkn-123" not in json.dumps(report.as_dict())


def test_fsspec_downloads_and_the_layout_stays_inside_dest(tmp_path: pathlib.Path) -> None:
    fs = fsspec.filesystem("memory")
    fs.pipe({"/dl/x.bin": b"\1" * 5000, "/dl/sub/y.txt": b"why"})
    try:
        items = [("memory:///dl/x.bin", 5000, 1.7e9), ("memory:///dl/sub/y.txt", 3, None)]
        report = download_files(items, str(tmp_path / "dest"))
    finally:
        fs.rm("/dl", recursive=True)
    assert (report.fetched, report.failed) == (2, 0)
    assert (tmp_path / "dest" / "dl" / "x.bin").stat().st_mtime == 1.7e9
    local = tmp_path / "local.csv"
    write_csv(local)
    assert download_files([(str(local), None, None)], str(tmp_path / "dest")).fetched == 1
    assert (tmp_path / "dest" / str(local).lstrip("/")).read_bytes() == local.read_bytes()
    with pytest.raises(DownloadError, match="outside"):
        local_target(str(tmp_path), "https://h/a/../../etc/passwd")


def test_globus_download_without_a_local_collection_names_what_is_missing(tmp_path: pathlib.Path) -> None:
    ep = XtractEndpoint(repo_type="globus", globus_ep_id="abc", dirs=["/x"])
    with pytest.raises(DownloadError, match="credentials, local_ep_id"):
        download_files([("/x/a.nc", 1, None)], str(tmp_path), endpoint=ep)


@pytest.fixture(scope="module")
def https_run(tmp_path_factory: pytest.TempPathFactory):
    """One https-habitat flow run against a loopback server (kept serving for the tests of this module)."""
    root, out = tmp_path_factory.mktemp("served"), tmp_path_factory.mktemp("out")
    data = _payload(root)
    with LoopbackServer(str(root)) as srv:
        srv.state.token = "tok-e2e"
        ep = XtractEndpoint(repo_type="https", dirs=[srv.url], local_mdata_path=str(out),
                            http=HttpCredentials(bearer_token="tok-e2e"))
        state = xtract_endpoint(ep, extraction=ExtractionOptions(workers=1), return_state=True)
        assert state.is_completed(), state.message
        srv.state.token = None  # the CLI tests below download without the block
        yield srv, out, data, state.result()


@pytest.mark.slow
def test_https_habitat_run_records_urls_and_no_staging_leaks(https_run) -> None:
    srv, out, data, summary = https_run
    assert summary["files_crawled"] == 3 and summary["failed"] == 0, summary
    idx = check_contract(out, expected_files=3)
    assert sorted(idx["path"]) == sorted(srv.url + rel for rel in data)
    gid = idx.loc[idx["path"].str.endswith("e.csv"), "group_id"].item()
    doc = json.loads((out / "groups" / f"{gid}.json").read_text())
    assert doc["files"][0]["path"] == srv.url + "c/d/e.csv" and doc["habitat"] == "https"
    assert doc["metadata"]["tabular"]["rows"] == 1
    text = "".join(p.read_text() for p in (out / "groups").glob("*.json"))
    assert "fetch-staging" not in text and "tok-e2e" not in text
    assert not (out / ".xtract" / "fetch-staging").exists()
    assert search("spectrometer", str(out))[0].path == srv.url + "a.txt"
    assert {p for p, _, _ in items_from_index(str(out))} == set(idx["path"])


@pytest.mark.slow
def test_cli_downloads_a_search_result_then_the_whole_crawl(https_run, tmp_path, xtract_bin, subprocess_env) -> None:
    srv, out, data, _ = https_run
    dest = tmp_path / "dl"
    proc = subprocess.run([*xtract_bin, "download", str(dest), "--metadata-dir", str(out), "--query", "spectrometer",
                           "--json"], capture_output=True, text=True, env=subprocess_env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.splitlines()[-1])["fetched"] == 1
    assert "[1/1]" in proc.stderr  # plain progress lines when stderr is not a terminal
    proc = subprocess.run([*xtract_bin, "download", str(dest), "-o", str(out), "--json"], capture_output=True,
                          text=True, env=subprocess_env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.splitlines()[-1])
    assert (report["fetched"], report["skipped"]) == (2, 1)
    host = srv.url.split("/")[2].replace(":", "_")
    assert all((dest / host / rel).read_bytes() == body for rel, body in data.items())
