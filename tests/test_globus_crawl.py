"""GlobusCrawler over the loopback Transfer service: same records as the local crawl, faults survived."""

from __future__ import annotations

import math
import os
import pathlib
from functools import partial

import pytest

from tasks.crawl import get_crawler
from tasks.habitats import HABITATS
from tasks.habitats.globus_crawl import GlobusCrawler, crawl_retry_config, parse_last_modified
from tasks.habitats.local_crawl import LocalCrawler
from tests.globus_service.testing import loopback_globus
from xtract_blocks import XtractEndpoint

FAST_RETRY = partial(crawl_retry_config, max_retries=6, max_sleep=2.0, backoff=lambda ctx: 0.05)


@pytest.fixture(scope="module")
def globus():
    with loopback_globus() as lb:
        yield lb


def make_tree(root: pathlib.Path, n_dirs: int = 12, per_dir: int = 7) -> int:
    for d in range(n_dirs):
        sub = root / f"d{d:02d}" / ("deep" if d % 3 == 0 else "")
        sub.mkdir(parents=True, exist_ok=True)
        for i in range(per_dir):
            (sub / f"f{i}.{'csv' if i % 2 else 'txt'}").write_text("x" * (i + d))
    (root / "top.bin").write_bytes(b"\0" * 10)
    return n_dirs * per_dir + 1


def crawl_all(crawler, dirs, batch_size=10_000):
    records = [r for batch in crawler.iter_batches(dirs, batch_size=batch_size) for r in batch]
    return records


def test_globus_crawl_matches_local_crawl(globus, tmp_path):
    n = make_tree(tmp_path)
    os.symlink(tmp_path / "top.bin", tmp_path / "link.bin")
    ep = globus.service.transfer.add_endpoint("/")
    crawler = GlobusCrawler(globus.credentials, ep, concurrency=4, retry_config=FAST_RETRY)
    got = crawl_all(crawler, [str(tmp_path)], batch_size=10)
    local = crawl_all(LocalCrawler(ep), [str(tmp_path)])
    assert len(got) == n and crawler.status.files == n and crawler.status.symlinks_skipped == 1
    assert crawler.status.dirs == 1 + 12 + 4 and crawler.status.errors == []
    by_path = {r.path: r for r in local}
    for r in got:
        want = by_path[r.path]
        assert (r.size, r.extension, r.endpoint, r.permissions) == (want.size, want.extension, ep, want.permissions)
        assert r.mtime == math.floor(want.mtime)  # Transfer lists mtimes to the second
    # a directory's files stay contiguous, as the group stage needs
    dirs_seen = [os.path.dirname(r.path) for r in got]
    changes = sum(1 for a, b in zip(dirs_seen, dirs_seen[1:], strict=False) if a != b)
    assert changes == len(set(dirs_seen)) - 1


def test_globus_crawl_pages_and_bounds_listings(globus, tmp_path):
    big = tmp_path / "big"
    big.mkdir()
    for i in range(250):
        (big / f"{i:04d}.dat").write_bytes(b"1")
    for d in range(20):
        (tmp_path / f"s{d}").mkdir()
        (tmp_path / f"s{d}" / "x.txt").write_text("x")
    ep = globus.service.transfer.add_endpoint(str(tmp_path))
    globus.service.ls_max_in_flight = 0
    globus.service.ls_latency_s = 0.05
    try:
        crawler = GlobusCrawler(globus.credentials, ep, concurrency=3, page_size=100, retry_config=FAST_RETRY)
        got = crawl_all(crawler, ["/"])
    finally:
        globus.service.ls_latency_s = 0.0
    assert len(got) == 270 and len({r.path for r in got}) == 270
    assert sum(r.path.startswith("/big/") for r in got) == 250
    assert crawler.listing_calls == 1 + 3 + 20  # root, big in 3 pages, 20 small dirs
    assert 2 <= globus.service.ls_max_in_flight <= 3


def test_globus_crawl_survives_429_storm_5xx_and_drops(globus, tmp_path):
    n = make_tree(tmp_path)
    ep = globus.service.transfer.add_endpoint(str(tmp_path))
    svc = globus.service
    svc.inject(f"{ep}/ls", 4, status=429, retry_after=1, every=2)
    svc.inject(f"{ep}/ls", 2, status=502, every=2)
    svc.inject(f"{ep}/ls", 2, status=503)
    svc.inject(f"{ep}/ls", 2, drop=True, every=2)
    crawler = GlobusCrawler(globus.credentials, ep, concurrency=4, retry_config=FAST_RETRY)
    got = crawl_all(crawler, ["/"])
    assert len(got) == n and crawler.status.errors == []
    assert all(f.times == 0 for f in svc.faults if ep in f.route), "every injected fault was hit"
    log = svc.requests_to(f"{ep}/ls")
    for i, (t, _, path, status) in enumerate(log):
        if status == 429:  # Retry-After: 1 was honoured before that listing was asked again
            later = [t2 for t2, _, p2, _ in log[i + 1:] if p2.split("&offset")[0] == path.split("&offset")[0]]
            assert later and later[0] - t >= 0.95


def test_globus_crawl_records_inaccessible_dirs_and_goes_on(globus, tmp_path):
    n = make_tree(tmp_path)
    ep = globus.service.transfer.add_endpoint(str(tmp_path))
    t = globus.service.transfer
    t.forbidden.add((ep, "/d01"))
    t.too_large.add((ep, "/d02"))
    crawler = GlobusCrawler(globus.credentials, ep, concurrency=4, retry_config=FAST_RETRY)
    got = crawl_all(crawler, ["/", "/no/such/dir"])
    errors = {e["path"]: e["error"] for e in crawler.status.errors}
    assert set(errors) == {"/d01", "/d02", "/no/such/dir"}
    assert errors["/d01"].startswith("HTTP 403 EndpointPermissionDenied")
    assert errors["/d02"].startswith("HTTP 502 ExternalError.DirListingFailed.SizeLimit")
    assert errors["/no/such/dir"].startswith("HTTP 404 ClientError.NotFound")
    assert len(got) == n - 14 and crawler.status.dirs_failed == 3
    too_large_calls = [r for r in globus.service.requests_to(f"{ep}/ls") if "d02" in r[2]]
    assert len(too_large_calls) == 1  # a permanent listing error is not retried


def test_globus_crawl_root_may_be_a_file_and_registry_dispatches(globus, tmp_path):
    make_tree(tmp_path)
    ep_id = globus.service.transfer.add_endpoint(str(tmp_path))
    ep = XtractEndpoint(repo_type="globus", globus_ep_id=ep_id, dirs=["/top.bin"], credentials=globus.credentials)
    assert "globus" in HABITATS
    crawler = get_crawler(ep)
    got = crawl_all(crawler, ep.dirs)
    assert [(r.path, r.size) for r in got] == [("/top.bin", 10)]
    with pytest.raises(ValueError, match="globus_ep_id"):
        get_crawler(XtractEndpoint(repo_type="globus", dirs=["/"], credentials=globus.credentials))


def test_globus_parse_last_modified():
    assert parse_last_modified("1970-01-02 00:00:00+00:00") == 86400.0
    assert parse_last_modified(None) == 0.0
