"""The 'fsspec' habitat over S3: s3fs against moto's S3 server on loopback (crawl, download with ETag md5)."""

from __future__ import annotations

import hashlib
import os
import pathlib

import pytest
from moto.server import ThreadedMotoServer

from tasks.crawl import get_crawler
from tasks.habitats import download_files
from xtract_blocks import FsspecFilesystem, XtractEndpoint


@pytest.fixture(scope="module")
def s3_block():
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    block = FsspecFilesystem(protocol="s3", storage_options={
        "endpoint_url": f"http://{host}:{port}",
        "skip_instance_cache": True}, secret_options={"key": "testing-key", "secret": "testing-secret"})
    try:
        yield block
    finally:
        server.stop()


def test_s3_bucket_is_crawled_and_downloaded_with_md5_verified(s3_block, tmp_path: pathlib.Path) -> None:
    fs = s3_block.filesystem()
    fs.mkdir("xtract-bucket")
    blobs = {"xtract-bucket/run1/a.csv": b"x,y\n1,2\n", "xtract-bucket/run1/deep/b.bin": os.urandom(70_000),
             "xtract-bucket/top.txt": b"notes"}
    fs.pipe(blobs)
    ep = XtractEndpoint(repo_type="fsspec", dirs=["xtract-bucket"], filesystem=s3_block)
    crawler = get_crawler(ep)
    records = [r for batch in crawler.iter_batches(ep.dirs, batch_size=100) for r in batch]
    assert sorted((r.path, r.size) for r in records) == sorted((f"s3://{k}", len(v)) for k, v in blobs.items())
    assert all(r.mtime > 1e9 and r.endpoint == "s3" for r in records)
    assert crawler.status.dirs_failed == 0

    report = download_files([(r.path, r.size, r.mtime) for r in records], str(tmp_path / "dest"), endpoint=ep)
    assert (report.fetched, report.verified, report.failed) == (3, 3, 0), report.errors
    for key, body in blobs.items():
        got = (tmp_path / "dest" / key).read_bytes()
        assert hashlib.sha256(got).digest() == hashlib.sha256(body).digest()
    assert "testing-secret" not in repr(s3_block) and "testing-secret" not in s3_block.model_dump_json()
