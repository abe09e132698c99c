"""The 'https' and 'fsspec' habitats: crawls of a loopback HTTP server and of fsspec filesystems, and full runs."""

from __future__ import annotations

import json
import pathlib
import uuid

import fsspec
import pytest

from flows.endpoint_flow import xtract_endpoint
from tasks.crawl import get_crawler
from tasks.habitats.fsspec_crawl import FsspecCrawler
from tasks.habitats.https_crawl import HttpCrawler, parse_file_list, parse_listing
from tasks.pools.options import ExtractionOptions
from tasks.store.search import search
from tests.helpers import check_contract, write_csv
from tests.loopback_http import LoopbackServer
from xtract_blocks import CredentialsError, FsspecFilesystem, GlobusCredentials, HttpCredentials, XtractEndpoint

NGINX = """<html><head><title>Index of /data/</title></head><body><h1>Index of /data/</h1><hr><pre>
<a href="../">../</a>
<a href="sub/">sub/</a>                                               01-Jan-2024 10:00                   -
<a href="a%20b.csv">a b.csv</a>                                      02-Mar-2024 11:30                1234
<a href="big.nc">big.nc</a>                                          02-Mar-2024 11:31               99999
</pre><hr></body></html>"""

APACHE = """<html><body><h1>Index of /data</h1><table>
<tr><th><a href="?C=N;O=D">Name</a></th><th><a href="?C=M;O=A">Last modified</a></th></tr>
<tr><td><a href="/">Parent Directory</a></td><td>&nbsp;</td><td align="right">  - </td></tr>
<tr><td><a href="x.h5">x.h5</a></td><td align="right">2024-05-06 07:08  </td><td align="right">1.2K</td></tr>
<tr><td><a href="deep/">deep/</a></td><td align="right">2024-05-06 07:08  </td><td align="right">  - </td></tr>
</table></body></html>"""


def _tree(root: pathlib.Path) -> None:
    write_csv(root / "tables" / "t1.csv")
    write_csv(root / "tables" / "deeper" / "t 2.csv", rows=7)
    (root / "readme.txt").write_text("spectrometer calibration notes\n")


def test_nginx_and_apache_listings_parse_without_following_parents_or_sort_links() -> None:
    files, dirs = parse_listing("http://h/data/", NGINX)
    assert dirs == ["http://h/data/sub/"]
    assert [(u, s) for u, s, _ in files] == [("http://h/data/a%20b.csv", 1234), ("http://h/data/big.nc", 99999)]
    assert files[0][2] == pytest.approx(1709379000.0)  # 02-Mar-2024 11:30 UTC
    files, dirs = parse_listing("http://h/data/", APACHE)
    assert dirs == ["http://h/data/deep/"]
    assert [(u, s) for u, s, _ in files] == [("http://h/data/x.h5", None)]  # "1.2K" is not exact: HEAD it
    assert files[0][2] is not None


def test_nginx_json_listing_and_file_lists() -> None:
    body = json.dumps([{"name": "d", "type": "directory", "mtime": "Wed, 01 Jan 2025 00:00:00 GMT"},
                       {"name": "f.csv", "type": "file", "mtime": "Wed, 01 Jan 2025 00:00:00 GMT", "size": 5}])
    files, dirs = parse_listing("http://h/x/", body, "application/json")
    assert dirs == ["http://h/x/d/"] and files == [("http://h/x/f.csv", 5, 1735689600.0)]
    entries = parse_file_list("http://h/lists/all.txt", "# comment\n../b.csv 10 2025-01-01T00:00:00Z\n"
                                                        "http://other/a.nc\n\n")
    assert entries == [("http://h/b.csv", 10, 1735689600.0), ("http://other/a.nc", None, None)]


def test_http_crawl_of_a_python_http_server_with_head_for_sizes(tmp_path: pathlib.Path) -> None:
    _tree(tmp_path)
    with LoopbackServer(str(tmp_path)) as srv:
        crawler = HttpCrawler(credentials=HttpCredentials(), max_workers=4)
        records = [r for batch in crawler.iter_batches([srv.url, srv.url + "missing/"]) for r in batch]
    by_url = {r.path: r for r in records}
    assert set(by_url) == {srv.url + "readme.txt", srv.url + "tables/t1.csv", srv.url + "tables/deeper/t%202.csv"}
    spaced = tmp_path / "tables" / "deeper" / "t 2.csv"
    assert by_url[srv.url + "tables/deeper/t%202.csv"].size == spaced.stat().st_size
    assert by_url[srv.url + "tables/t1.csv"].extension == "csv"
    assert all(r.mtime > 0 and r.endpoint == srv.url.split("/")[2] for r in records)
    assert crawler.status.files == 3 and crawler.status.dirs == 3
    assert crawler.status.dirs_failed == 1 and "404" in crawler.status.errors[0]["error"]


def test_bearer_token_is_sent_and_never_reported(tmp_path: pathlib.Path) -> None:
    _tree(tmp_path)
    with LoopbackServer(str(tmp_path)) as srv:
        srv.state.token = "s3cr3t-token"
        denied = HttpCrawler(credentials=HttpCredentials(bearer_token="wrong-token"))
        assert [r for b in denied.iter_batches([srv.url]) for r in b] == []
        assert "401" in denied.status.errors[0]["error"]
        assert "token" not in json.dumps(denied.status.errors)
        ok = HttpCrawler(credentials=HttpCredentials(bearer_token="s3cr3t-token"))
        assert len([r for b in ok.iter_batches([srv.url]) for r in b]) == 3
    assert "s3cr3t" not in repr(HttpCredentials(bearer_token="s3cr3t-token"))


def test_globus_collection_https_access_uses_a_token_from_globus_credentials(tmp_path: pathlib.Path) -> None:
    from tests.globus_service.testing import loopback_globus

    _tree(tmp_path)
    collection = str(uuid.uuid4())
    with loopback_globus() as lb, LoopbackServer(str(tmp_path)) as srv:
        srv.state.token_ok = lambda token: token in lb.service.access_tokens
        creds = HttpCredentials(globus_credentials=lb.fresh_credentials(), globus_collection_id=collection)
        crawler = HttpCrawler(credentials=creds)
        records = [r for b in crawler.iter_batches([srv.url]) for r in b]
        assert len(records) == 3 and crawler.status.dirs_failed == 0
        bad = HttpCredentials(globus_credentials=GlobusCredentials(client_id=lb.client_id, client_secret="nope"),
                              globus_collection_id=collection)
        with pytest.raises(CredentialsError, match="401") as info:
            bad.auth_headers()
        assert "nope" not in str(info.value)


def test_fsspec_memory_and_local_crawls(tmp_path: pathlib.Path) -> None:
    fs = fsspec.filesystem("memory")
    fs.pipe({"/habitat/a/x.csv": b"a,b\n1,2\n", "/habitat/a/b/y.txt": b"hello", "/habitat/z.bin": b"\0" * 10})
    try:
        crawler = FsspecCrawler(fs)
        records = [r for batch in crawler.iter_batches(["/habitat"]) for r in batch]
        assert sorted((r.path, r.size) for r in records) == [
            ("memory:///habitat/a/b/y.txt", 5), ("memory:///habitat/a/x.csv", 8), ("memory:///habitat/z.bin", 10)]
        assert crawler.status.dirs == 3 and {r.endpoint for r in records} == {"memory"}
    finally:
        fs.rm("/habitat", recursive=True)
    _tree(tmp_path)
    ep = XtractEndpoint(repo_type="fsspec", dirs=[str(tmp_path)], filesystem=FsspecFilesystem(protocol="file"))
    crawler = get_crawler(ep)
    records = [r for batch in crawler.iter_batches(ep.dirs, batch_size=100) for r in batch]
    assert {pathlib.Path(r.path.removeprefix("file://")).name for r in records} == {"t1.csv", "t 2.csv",
                                                                                      "readme.txt"}
    assert all(r.mtime > 1e9 for r in records)


def test_unknown_fsspec_protocol_names_the_problem() -> None:
    with pytest.raises(Exception, match="no-such-proto"):
        FsspecFilesystem(protocol="no-such-proto").filesystem()


@pytest.mark.slow
def test_fsspec_memory_endpoint_runs_end_to_end(tmp_path: pathlib.Path) -> None:
    fs = fsspec.filesystem("memory")
    fs.pipe({"/run/t.csv": b"temperature,site\n1.5,alpha\n", "/run/n.txt": b"free text\n"})
    try:
        ep = XtractEndpoint(repo_type="fsspec", dirs=["/run"], local_mdata_path=str(tmp_path / "out"),
                            filesystem=FsspecFilesystem(protocol="memory"))
        state = xtract_endpoint(ep, extraction=ExtractionOptions(workers=1), return_state=True)
        assert state.is_completed(), state.message
    finally:
        fs.rm("/run", recursive=True)
    idx = check_contract(tmp_path / "out", expected_files=2)
    assert sorted(idx["path"]) == ["memory:///run/n.txt", "memory:///run/t.csv"]
    assert set(idx["status"]) == {"ok"}
    assert search("name=temperature", str(tmp_path / "out"))[0].path == "memory:///run/t.csv"
