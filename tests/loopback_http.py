"""A loopback HTTP file server for habitat and download tests: http.server plus Range, auth and faults.

``SimpleHTTPRequestHandler`` lists directories (the autoindex we parse) but has no
Range support; this handler adds byte ranges (206 + Content-Range, If-Range), an
optional bearer token, a ``Repr-Digest`` sha-256 header, and a one-shot fault that
cuts a response short, so resumable downloads are tested against real sockets.
"""

from __future__ import annotations

import base64
import hashlib
import os
import threading
from collections import Counter
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class _State:
    def __init__(self) -> None:
        self.token: str | None = None
        self.token_ok: Any = None  # a predicate on the bearer token (e.g. "issued by the loopback Globus Auth")
        self.digest = False
        self.wrong_digest: set[str] = set()
        self.cut_once: dict[str, int] = {}  # url path -> bytes to send before dropping the connection
        self.requests: Counter[tuple[str, str]] = Counter()
        self.bytes_sent: Counter[str] = Counter()
        self.ranges: list[tuple[str, str]] = []
        self.lock = threading.Lock()


class RangeHandler(SimpleHTTPRequestHandler):
    state: _State

    def log_message(self, *args: Any) -> None:  # keep test output clean
        pass

    def _authorized(self) -> bool:
        header = self.headers.get("Authorization") or ""
        if self.state.token_ok is not None:
            ok = header.startswith("Bearer ") and self.state.token_ok(header[7:])
        else:
            ok = not self.state.token or header == f"Bearer {self.state.token}"
        if not ok:
            self.send_error(401, "Unauthorized")
        return ok

    def do_HEAD(self) -> None:  # noqa: N802
        with self.state.lock:
            self.state.requests[("HEAD", self.path)] += 1
        if self._authorized():
            super().do_HEAD()

    def do_GET(self) -> None:  # noqa: N802
        with self.state.lock:
            self.state.requests[("GET", self.path)] += 1
        if not self._authorized():
            return
        path = self.translate_path(self.path)
        if os.path.isdir(path) or not os.path.isfile(path):
            return super().do_GET()
        with open(path, "rb") as fh:
            data = fh.read()
        etag = '"' + hashlib.md5(data).hexdigest() + '"'
        start, end, status = 0, len(data) - 1, 200
        rng = self.headers.get("Range")
        if_range = self.headers.get("If-Range")
        if rng and rng.startswith("bytes=") and (if_range is None or if_range == etag):
            first, _, last = rng[6:].partition("-")
            start = int(first)
            end = int(last) if last else len(data) - 1
            status = 206
            with self.state.lock:
                self.state.ranges.append((self.path, rng))
        body = data[start:end + 1]
        self.send_response(status)
        self.send_header("Content-Type", self.guess_type(path))
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("ETag", etag)
        self.send_header("Last-Modified", self.date_time_string(int(os.stat(path).st_mtime)))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
        if self.state.digest:
            digest = hashlib.sha256(b"wrong" if self.path in self.state.wrong_digest else data).digest()
            self.send_header("Repr-Digest", f"sha-256=:{base64.b64encode(digest).decode()}:")
        self.end_headers()
        with self.state.lock:
            cut = self.state.cut_once.pop(self.path, None)
        if cut is not None:
            self.wfile.write(body[:cut])
            self.wfile.flush()
            with self.state.lock:
                self.state.bytes_sent[self.path] += cut
            self.close_connection = True
            self.connection.shutdown(2)
            return
        self.wfile.write(body)
        with self.state.lock:
            self.state.bytes_sent[self.path] += len(body)


class LoopbackServer:
    """``with LoopbackServer(root) as srv: srv.url + 'a/b.csv'`` serves ``root`` on 127.0.0.1."""

    def __init__(self, root: str) -> None:
        self.state = _State()
        handler = type("Handler", (RangeHandler,), {"state": self.state})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(handler, directory=root))
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> LoopbackServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=5)
