"""The 'https' habitat: crawl web servers by their directory listings or by file lists.

A directory URL (ending in ``/``) is listed by parsing its autoindex page (Python's
``http.server``, nginx, Apache; nginx's JSON autoindex too); only links below the
directory are followed, so "Parent directory" and sort links never loop. Listings
that give no exact size or date (``http.server``'s) are completed with HEAD
requests, in parallel. A file list is a text file with one URL per line, optionally
followed by the size in bytes and the mtime (epoch seconds or ISO 8601); relative
URLs are resolved against the list's own URL.

Records carry the full URL as their path, so metadata names where the file lives.
Listings run concurrently (bounded); each directory's files are yielded together,
as the group stage expects.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from html.parser import HTMLParser
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit, urlunsplit

from extractors.detect import split_extension
from tasks.habitats.base import CrawlStatus
from tasks.habitats.listing import drain_listings
from tasks.store.records import FileRecord
from xtract_blocks import XtractEndpoint
from xtract_blocks.errors import ConfigurationError
from xtract_blocks.http import HttpCredentials

_DATE = re.compile(r"(\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(?::\d{2})?|\d{1,2}-[A-Za-z]{3}-\d{4} \d{2}:\d{2})")
_SIZE_AFTER_DATE = re.compile(_DATE.pattern + r"\s+(\S+)")


class _Links(HTMLParser):
    """Anchors of a listing page with the plain text that follows each (nginx/Apache put date and size there)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[list[str]] = []  # [href, trailing text]
        self._in_a = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            href = dict(attrs).get("href")
            if href:
                self.links.append([href, ""])
                self._in_a = True
        elif tag in ("tr", "li") and self.links:
            self.links[-1][1] += "\n"

    def handle_endtag(self, tag: str) -> None:
        if tag == "a":
            self._in_a = False

    def handle_data(self, data: str) -> None:
        if self.links and not self._in_a:
            self.links[-1][1] += data


def _parse_date(text: str) -> float | None:
    for fmt in ("%d-%b-%Y %H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M"):
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=UTC).timestamp()
        except ValueError:
            continue
    return None


def parse_mtime(value: Any) -> float | None:
    """Epoch seconds from a number, an HTTP date, or an ISO 8601 string; None when unparseable."""
    if value is None or value == "":
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    text = str(value).strip()
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return parsedate_to_datetime(text).timestamp()
    except (TypeError, ValueError, IndexError):
        pass
    try:
        return parse_mtime(datetime.fromisoformat(text.replace("Z", "+00:00")))
    except ValueError:
        return _parse_date(text)


def _strip(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def parse_listing(dir_url: str, body: str, content_type: str = "") -> tuple[list[tuple[str, int | None, float | None]],
                                                                          list[str]]:
    """(files as (url, size or None, mtime or None), subdirectory urls) of one listing page."""
    files: list[tuple[str, int | None, float | None]] = []
    dirs: list[str] = []
    seen: set[str] = set()
    if "json" in content_type:  # nginx autoindex_format json
        for entry in json.loads(body):
            url = urljoin(dir_url, entry["name"].replace("%", "%25").replace("#", "%23").replace("?", "%3F"))
            if entry.get("type") == "directory":
                dirs.append(url.rstrip("/") + "/")
            elif entry.get("type") == "file":
                files.append((url, entry.get("size"), parse_mtime(entry.get("mtime"))))
        return files, dirs
    parser = _Links()
    parser.feed(body)
    for href, trailing in parser.links:
        if href.startswith(("?", "#", "mailto:", "javascript:")):
            continue
        url = urljoin(dir_url, href)
        if urlsplit(url).query or not url.startswith(dir_url) or _strip(url) == dir_url or url in seen:
            continue  # sort links, parents, other hosts, duplicates
        seen.add(url)
        if url.endswith("/"):
            dirs.append(url)
            continue
        size = mtime = None
        first = trailing.strip().split("\n", 1)[0]
        m = _SIZE_AFTER_DATE.search(first)
        if m:
            mtime = _parse_date(m.group(1))
            if m.group(2).isdigit():
                size = int(m.group(2))  # exact bytes only; "1.2K" is left to HEAD
        files.append((url, size, mtime))
    return files, dirs


def parse_file_list(list_url: str, body: str) -> list[tuple[str, int | None, float | None]]:
    """Entries of a file list: ``URL [SIZE [MTIME]]`` per line; lines starting with ``#`` are comments."""
    out = []
    for line in body.splitlines():
        parts = line.split()
        if not parts or parts[0].startswith("#"):
            continue
        size = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None
        mtime = parse_mtime(" ".join(parts[2:])) if len(parts) > 2 else None
        out.append((urljoin(list_url, parts[0]), size, mtime))
    return sorted(out)  # a directory's files together, as grouping expects


class HttpCrawler:
    """Crawls directory listings and file lists of HTTP(S) servers, a few requests at a time."""

    def __init__(self, endpoint_id: str | None = None, *, credentials: HttpCredentials | None = None,
                 file_lists: list[str] | None = None, max_workers: int = 8, head_missing: bool = True) -> None:
        self.endpoint_id = endpoint_id
        self.credentials = credentials or HttpCredentials()
        self.file_lists = list(file_lists or [])
        self.max_workers = max_workers
        self.head_missing = head_missing
        self.status = CrawlStatus()
        self._local = threading.local()

    def session(self) -> Any:
        """One requests.Session per thread (sessions are not thread-safe)."""
        s = getattr(self._local, "session", None)
        if s is None:
            s = self._local.session = self.credentials.get_client()
        return s

    def _get(self, url: str) -> Any:
        resp = self.session().get(url, timeout=self.credentials.timeout_s)
        if resp.status_code >= 400:
            raise OSError(f"HTTP {resp.status_code} {resp.reason}")
        return resp

    def _head(self, item: tuple[str, int | None, float | None]) -> tuple[str, int | None, float | None]:
        url, size, mtime = item
        try:
            resp = self.session().head(url, timeout=self.credentials.timeout_s, allow_redirects=True)
        except Exception:  # noqa: BLE001 - size stays unknown; extraction will still fetch the file
            return item
        if resp.status_code < 400:
            length = resp.headers.get("Content-Length")
            size = int(length) if size is None and length and length.isdigit() else size
            mtime = mtime if mtime is not None else parse_mtime(resp.headers.get("Last-Modified"))
        return url, size, mtime

    def _record(self, url: str, size: int | None, mtime: float | None) -> FileRecord:
        name = unquote(urlsplit(url).path.rsplit("/", 1)[-1])
        endpoint = self.endpoint_id or urlsplit(url).netloc
        return FileRecord(url, int(size or 0), float(mtime or 0.0), split_extension(name), endpoint, None)

    def _complete(self, heads: ThreadPoolExecutor,
                  items: list[tuple[str, int | None, float | None]]) -> list[FileRecord]:
        if self.head_missing:
            missing = [i for i, (_, size, mtime) in enumerate(items) if size is None or mtime is None]
            for i, done in zip(missing, heads.map(self._head, [items[i] for i in missing]), strict=True):
                items[i] = done
        return [self._record(*item) for item in items]

    def _list(self, heads: ThreadPoolExecutor, url: str) -> tuple[list[FileRecord], list[str]]:
        resp = self._get(url)
        files, dirs = parse_listing(resp.url if resp.url.endswith("/") else url, resp.text,
                                    resp.headers.get("Content-Type", ""))
        return self._complete(heads, files), dirs

    def _file_list(self, heads: ThreadPoolExecutor, url: str) -> tuple[list[FileRecord], list[str]]:
        return self._complete(heads, parse_file_list(url, self._get(url).text)), []

    def _single(self, heads: ThreadPoolExecutor, url: str) -> tuple[list[FileRecord], list[str]]:
        return self._complete(heads, [(url, None, None)]), []

    def iter_batches(self, dirs: list[str], *, batch_size: int = 10_000) -> Iterator[list[FileRecord]]:
        started = time.perf_counter()
        st = self.status
        seen: set[str] = set()
        batch: list[FileRecord] = []
        with ThreadPoolExecutor(self.max_workers, thread_name_prefix="http-list") as lists, \
                ThreadPoolExecutor(self.max_workers, thread_name_prefix="http-head") as heads:
            pending: dict[Future[Any], str] = {}

            def submit(fn: Callable[..., Any], url: str) -> None:
                if url not in seen:
                    seen.add(url)
                    pending[lists.submit(fn, heads, url)] = url

            for url in self.file_lists:
                submit(self._file_list, url)
            for url in dirs:
                submit(self._list if url.endswith("/") else self._single, url)
            yield from drain_listings(pending, st, lambda sub: submit(self._list, sub), batch_size=batch_size,
                                      batch=batch)
        st.seconds = time.perf_counter() - started


def http_crawler_for(ep: XtractEndpoint) -> HttpCrawler:
    """CRAWLERS factory for repo_type 'https'."""
    bad = [d for d in ep.dirs if urlsplit(d).scheme not in ("http", "https")]
    if bad:
        raise ConfigurationError(f"repo_type 'https' needs http(s) URLs in dirs, got {bad[0]!r}")
    return HttpCrawler(ep.globus_ep_id, credentials=ep.http, file_lists=ep.file_lists)
