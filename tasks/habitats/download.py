"""Downloaders: fetch files of a crawl or a search result from their habitat to a local directory.

HTTP(S) downloads resume: bytes land in ``<file>.part`` and a rerun (or a retry
after a dropped connection) asks only for the rest with ``Range`` + ``If-Range``,
so a file changed in between is fetched whole again. fsspec sources resume by
seeking. A checksum is verified whenever the source gives one (``Repr-Digest`` /
``Digest`` / ``Content-MD5`` headers, an S3 ETag, a GCS md5); a mismatch deletes
the copy and is reported. Files go to ``DEST/<host or bucket>/<path>``; a file
already there with the expected size is not fetched again. Globus collections go
through one Globus transfer (tasks/habitats/globus_transfer.py). Concurrency is bounded; progress
is reported through a callback (a rich bar on a terminal, lines otherwise).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any, ClassVar
from urllib.parse import unquote, urlsplit

from xtract_blocks.errors import ChecksumMismatch, DownloadError
from xtract_blocks.http import FsspecFilesystem, HttpCredentials

CHUNK = 1 << 20
#: Network reads are small so a dropped connection loses at most this much of what arrived.
NET_CHUNK = 1 << 16
Item = tuple[str, int | None, float | None]  # (remote path or URL, size if known, mtime if known)
OnBytes = Callable[[int], None]


@dataclass
class Fetched:
    source: str
    local: str
    bytes: int = 0
    resumed_from: int = 0
    skipped: bool = False
    checksum: str | None = None  # "sha256" etc. when one was verified
    error: str | None = None


def local_target(dest: str, remote: str) -> str:
    """Where ``remote`` lands under ``dest``: ``<host or bucket>/<path>``, never outside ``dest``."""
    parts = urlsplit(remote)
    if parts.scheme and "://" in remote:
        rel = os.path.join(parts.netloc.replace(":", "_"), unquote(parts.path).lstrip("/"))
    else:
        rel = remote.lstrip("/")
    clean = [p for p in rel.split("/") if p not in ("", ".")]
    if not clean or ".." in clean:
        raise DownloadError(f"refusing to write {remote!r} outside {dest}")
    return os.path.join(os.path.abspath(dest), *clean)


# -- checksums -------------------------------------------------------------------
_DIGEST_ALGS = {"sha-256": "sha256", "sha-512": "sha512", "sha": "sha1", "md5": "md5", "sha-1": "sha1"}


def header_checksum(headers: Any, *, full_body: bool) -> tuple[str, str] | None:
    """(hashlib name, hex digest) from Repr-Digest (RFC 9530), Digest (RFC 3230) or Content-MD5."""
    for name in ("Repr-Digest", "Digest"):
        value = headers.get(name)
        if not value:
            continue
        for entry in value.split(","):
            alg, _, b64 = entry.strip().partition("=")
            algo = _DIGEST_ALGS.get(alg.strip().lower())
            if algo:
                return algo, base64.b64decode(b64.strip().strip(":")).hex()
    md5 = headers.get("Content-MD5")
    if md5 and full_body:
        return "md5", base64.b64decode(md5).hex()
    return None


def info_checksum(info: dict[str, Any]) -> tuple[str, str] | None:
    """An fsspec info dict's content checksum: GCS md5Hash, an explicit md5, or a single-part S3 ETag."""
    if info.get("md5Hash"):
        return "md5", base64.b64decode(info["md5Hash"]).hex()
    if isinstance(info.get("md5"), str) and re.fullmatch(r"[0-9a-f]{32}", info["md5"]):
        return "md5", info["md5"]
    etag = str(info.get("ETag") or info.get("etag") or "").strip('"')
    if re.fullmatch(r"[0-9a-f]{32}", etag):  # multipart ETags carry a "-N" suffix and are not an md5
        return "md5", etag
    return None


def file_digest(path: str, algo: str) -> str:
    h = hashlib.new(algo)
    with open(path, "rb") as fh:
        while block := fh.read(CHUNK):
            h.update(block)
    return h.hexdigest()


def _finish(part: str, local: str, expected: tuple[str, str] | None, mtime: float | None) -> str | None:
    """Verify the checksum (if any), then move the part into place; returns the algorithm verified."""
    if expected is not None:
        algo, want = expected
        if file_digest(part, algo) != want:
            for p in (part, part + ".json"):
                if os.path.exists(p):
                    os.unlink(p)
            raise ChecksumMismatch(f"{algo} of {os.path.basename(local)} does not match the source's checksum")
    os.replace(part, local)
    if os.path.exists(part + ".json"):
        os.unlink(part + ".json")
    if mtime:
        os.utime(local, (mtime, mtime))
    return expected[0] if expected else None


# -- sources ---------------------------------------------------------------------
class HttpFetcher:
    """Resumable ranged GETs with one requests.Session per thread."""

    def __init__(self, credentials: HttpCredentials | None = None) -> None:
        self.credentials = credentials or HttpCredentials()
        self._local = threading.local()

    def _session(self) -> Any:
        if getattr(self._local, "session", None) is None:
            self._local.session = self.credentials.get_client()
        return self._local.session

    def fetch(self, url: str, local: str, *, mtime: float | None = None, on_bytes: OnBytes | None = None) -> Fetched:
        part, meta_path = local + ".part", local + ".part.json"
        offset = os.path.getsize(part) if os.path.exists(part) and os.path.exists(meta_path) else 0
        headers = {}
        if offset:
            with open(meta_path, encoding="utf-8") as fh:
                validator = json.load(fh).get("validator")
            headers["Range"] = f"bytes={offset}-"
            if validator:
                headers["If-Range"] = validator
        with self._session().get(url, headers=headers, stream=True, timeout=self.credentials.timeout_s) as resp:
            if resp.status_code == 416:  # the part is stale or complete: start over
                os.unlink(part)
                return self.fetch(url, local, mtime=mtime, on_bytes=on_bytes)
            if resp.status_code >= 400:
                raise DownloadError(f"HTTP {resp.status_code} {resp.reason} for {url}")
            if resp.status_code == 206:
                m = re.match(r"bytes (\d+)-\d+/(\d+|\*)", resp.headers.get("Content-Range", ""))
                if not m or int(m.group(1)) != offset:
                    raise DownloadError(f"server answered a different range for {url}")
                total = int(m.group(2)) if m.group(2) != "*" else None
            else:
                offset = 0
                length = resp.headers.get("Content-Length")
                total = int(length) if length and length.isdigit() else None
            validator = resp.headers.get("ETag") or resp.headers.get("Last-Modified")
            with open(meta_path, "w", encoding="utf-8") as fh:
                json.dump({"url": url, "validator": validator}, fh)
            received = 0
            with open(part, "ab" if offset else "wb") as out:
                try:
                    for block in resp.iter_content(NET_CHUNK):
                        out.write(block)
                        received += len(block)
                        if on_bytes:
                            on_bytes(len(block))
                except OSError as exc:  # requests' connection errors are OSErrors too
                    raise DownloadError(f"{url}: connection lost ({type(exc).__name__}) after "
                                        f"{offset + received} bytes; rerun to resume") from None
            if total is not None and os.path.getsize(part) != total:
                raise DownloadError(f"{url}: got {os.path.getsize(part)} of {total} bytes; rerun to resume")
            expected = header_checksum(resp.headers, full_body=offset == 0)
        verified = _finish(part, local, expected, mtime)
        return Fetched(url, local, received, resumed_from=offset, checksum=verified)


class FsspecFetcher:
    """Streams from an fsspec filesystem; resumes a part by seeking when the source did not change."""

    def __init__(self, fs: Any) -> None:
        self.fs = fs

    def fetch(self, path: str, local: str, *, mtime: float | None = None, on_bytes: OnBytes | None = None) -> Fetched:
        info = self.fs.info(path)
        part, meta_path = local + ".part", local + ".part.json"
        stamp = f"{info.get('size')}:{info.get('mtime') or info.get('LastModified') or info.get('ETag')}"
        offset = 0
        if os.path.exists(part) and os.path.exists(meta_path):
            with open(meta_path, encoding="utf-8") as fh:
                offset = os.path.getsize(part) if json.load(fh).get("validator") == stamp else 0
        with open(meta_path, "w", encoding="utf-8") as fh:
            json.dump({"url": path, "validator": stamp}, fh)
        received = 0
        with self.fs.open(path, "rb") as src, open(part, "ab" if offset else "wb") as out:
            if offset:
                src.seek(offset)
            while block := src.read(CHUNK):
                out.write(block)
                received += len(block)
                if on_bytes:
                    on_bytes(len(block))
        size = info.get("size")
        if size is not None and os.path.getsize(part) != size:
            raise DownloadError(f"{path}: got {os.path.getsize(part)} of {size} bytes; rerun to resume")
        verified = _finish(part, local, info_checksum(info), mtime)
        return Fetched(path, local, received, resumed_from=offset, checksum=verified)


def scheme_fetcher(remote: str, http: HttpCredentials | None = None) -> HttpFetcher | FsspecFetcher:
    """A fetcher chosen by the path's scheme alone (http(s), any fsspec protocol, or a local path)."""
    scheme = urlsplit(remote).scheme if "://" in remote else ""
    if scheme in ("http", "https"):
        return HttpFetcher(http)
    return FsspecFetcher(FsspecFilesystem(protocol=scheme or "file").filesystem())


# -- many files -------------------------------------------------------------------
@dataclass
class DownloadReport:
    files: int = 0
    fetched: int = 0
    skipped: int = 0
    failed: int = 0
    bytes: int = 0
    verified: int = 0
    resumed: int = 0
    errors: list[dict[str, str]] | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def fetch_many(items: Iterable[Item], dest: str, fetcher_for: Callable[[str], Any], *, concurrency: int = 4,
               attempts: int = 3, on_file: Callable[[Fetched], None] | None = None,
               on_bytes: OnBytes | None = None, on_total: Callable[[int, int], None] | None = None) -> DownloadReport:
    """Fetch every item to ``dest`` with at most ``concurrency`` transfers at once; failures are collected.

    ``fetcher_for(remote)`` gives the fetcher of one path; one fetcher per scheme is kept (sessions are reused).
    """
    items = list(items)
    report = DownloadReport(files=len(items), errors=[])
    if on_total:
        on_total(len(items), sum(s or 0 for _, s, _ in items))
    fetchers: dict[str, Any] = {}
    lock = threading.Lock()

    def one(item: Item) -> Fetched:
        remote, size, mtime = item
        local = local_target(dest, remote)
        if size is not None and os.path.isfile(local) and os.path.getsize(local) == size:
            return Fetched(remote, local, skipped=True)
        os.makedirs(os.path.dirname(local), exist_ok=True)
        key = urlsplit(remote).scheme if "://" in remote else ""
        with lock:
            fetcher = fetchers.get(key) or fetchers.setdefault(key, fetcher_for(remote))
        last: Exception | None = None
        for _ in range(attempts):
            try:
                return fetcher.fetch(remote, local, mtime=mtime, on_bytes=on_bytes)
            except ChecksumMismatch as exc:
                return Fetched(remote, local, error=str(exc))
            except Exception as exc:  # noqa: BLE001 - dropped connections and server errors are retried (resuming)
                last = exc
        return Fetched(remote, local, error=f"{type(last).__name__}: {last}")

    with ThreadPoolExecutor(max(1, concurrency), thread_name_prefix="download") as pool:
        for res in pool.map(one, items):
            if res.error:
                report.failed += 1
                report.errors.append({"path": res.source, "error": res.error})  # type: ignore[union-attr]
            elif res.skipped:
                report.skipped += 1
            else:
                report.fetched += 1
                report.bytes += res.bytes
                report.verified += res.checksum is not None
                report.resumed += res.resumed_from > 0
            if on_file:
                on_file(res)
    return report


@dataclass
class FetchStagingConfig:
    """How a habitat whose files are not on this disk brings each batch's bytes to the workers."""

    habitat: str
    staging_dir: str
    #: the fetcher of one remote path (the habitat's, with the endpoint's credentials)
    fetcher_for: Callable[[str], Any]
    parallel: int = 4
    #: the tasks.pools wrapper that stages each batch this way
    pool_kind: ClassVar[str] = "fetch-staging"

    def __repr__(self) -> str:  # the fetchers hold credentials: keep them out of any log line
        return f"FetchStagingConfig(habitat={self.habitat!r}, staging_dir={self.staging_dir!r})"
