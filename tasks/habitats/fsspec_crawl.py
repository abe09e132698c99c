"""The 'fsspec' habitat: crawl any fsspec filesystem the user has installed (s3, gcs, abfs, sftp, memory, ...).

Directories are listed with ``fs.ls(path, detail=True)``, several at a time
(object stores answer slowly but in parallel); each directory's files are yielded
together. Records carry the full URL (``s3://bucket/key``), so the metadata names
the file's home and the downloader knows which filesystem to ask.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from extractors.detect import split_extension
from tasks.habitats.base import CrawlStatus
from tasks.habitats.https_crawl import parse_mtime
from tasks.habitats.listing import drain_listings
from tasks.store.records import FileRecord
from xtract_blocks import XtractEndpoint
from xtract_blocks.errors import ConfigurationError

#: Where filesystems keep the modification time in ``info`` (local, s3, gcs, abfs, memory, sftp).
MTIME_KEYS = ("mtime", "LastModified", "last_modified", "updated", "modified", "created", "time")


def info_mtime(info: dict[str, Any]) -> float:
    for key in MTIME_KEYS:
        value = parse_mtime(info.get(key))
        if value is not None:
            return value
    return 0.0


def full_url(fs: Any, path: str) -> str:
    """``protocol://path`` for any filesystem (fsspec's ``unstrip_protocol``)."""
    return fs.unstrip_protocol(path)


class FsspecCrawler:
    """Lists an fsspec filesystem breadth-first with a few listings in flight."""

    def __init__(self, fs: Any, endpoint_id: str | None = None, *, max_workers: int = 8) -> None:
        self.fs = fs
        protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
        self.endpoint_id = endpoint_id or protocol
        self.max_workers = max_workers
        self.status = CrawlStatus()

    def _record(self, info: dict[str, Any]) -> FileRecord:
        name = info["name"]
        return FileRecord(full_url(self.fs, name), int(info.get("size") or 0), info_mtime(info),
                          split_extension(name.rsplit("/", 1)[-1]), self.endpoint_id, None)

    def _list(self, path: str) -> tuple[list[FileRecord], list[str]]:
        files, dirs = [], []
        for info in sorted(self.fs.ls(path, detail=True), key=lambda i: i["name"]):
            if info.get("type") == "directory":
                if self.fs._strip_protocol(info["name"]).rstrip("/") != self.fs._strip_protocol(path).rstrip("/"):
                    dirs.append(info["name"])
            elif info.get("type") == "file":
                files.append(self._record(info))
        return files, dirs

    def iter_batches(self, dirs: list[str], *, batch_size: int = 10_000) -> Iterator[list[FileRecord]]:
        started = time.perf_counter()
        st = self.status
        batch: list[FileRecord] = []
        seen: set[str] = set()
        with ThreadPoolExecutor(self.max_workers, thread_name_prefix="fsspec-list") as pool:
            pending: dict[Future[Any], str] = {}

            def submit(path: str) -> None:
                key = self.fs._strip_protocol(path).rstrip("/")
                if key not in seen:
                    seen.add(key)
                    pending[pool.submit(self._list, path)] = path

            for d in dirs:
                try:
                    info = self.fs.info(d)
                except (OSError, ValueError) as exc:
                    st.add_error(d, exc)
                    continue
                if info.get("type") == "file":
                    batch.append(self._record(info))
                    st.files += 1
                    st.bytes += batch[-1].size
                else:
                    submit(d)
            yield from drain_listings(pending, st, submit, batch_size=batch_size, batch=batch)
        st.seconds = time.perf_counter() - started


def fsspec_crawler_for(ep: XtractEndpoint) -> FsspecCrawler:
    """CRAWLERS factory for repo_type 'fsspec'."""
    if ep.filesystem is None:
        raise ConfigurationError("repo_type 'fsspec' needs XtractEndpoint.filesystem (an FsspecFilesystem block)")
    return FsspecCrawler(ep.filesystem.filesystem(), ep.globus_ep_id)
