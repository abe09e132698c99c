"""The shared front of the loopback Globus Compute services on 127.0.0.1:5000.

The SDK reaches a non-production Compute service only at ``http://localhost:5000``
(``GLOBUS_SDK_ENVIRONMENT=local``; it passes ``base_url`` itself, so no other address can be
configured). Several test sessions may run at once on one machine, each with its own loopback
service (its own Auth tokens, broker and endpoint) on a free port. This front is one small process
that owns port 5000 and forwards each request to the service that issued its bearer token: it
tries the registered services in turn, the first that does not answer 401 owns the token, and
later requests with that token go straight there. A 401 is only ever the answer of an auth check
made before any side effect, so trying is safe.

Services register (``POST /_front/register?port=P``) every few seconds and unregister when they
stop; a service not heard of for 30 s is dropped, and the front exits after 60 s without any.
Run: ``python tests/compute_service/front.py`` (exits at once if port 5000 is already served).
Standard library only.
"""

from __future__ import annotations

import http.client
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

PORT = 5000
DROP_AFTER_S = 30.0
IDLE_EXIT_S = 60.0
HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "host", "content-length"}


class Front:
    def __init__(self, port: int = PORT) -> None:
        self.backends: dict[int, float] = {}
        self.owner: dict[str, int] = {}
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), _handler_for(self))
        self.httpd.daemon_threads = True
        self.last_backend = time.monotonic()

    def register(self, port: int) -> None:
        with self.lock:
            self.backends[port] = time.monotonic()
            self.last_backend = time.monotonic()

    def unregister(self, port: int) -> None:
        with self.lock:
            self.backends.pop(port, None)
            self.owner = {t: p for t, p in self.owner.items() if p != port}
            self.last_backend = time.monotonic()

    def reaper(self) -> None:
        while True:
            time.sleep(2)
            now = time.monotonic()
            with self.lock:
                for port, seen in list(self.backends.items()):
                    if now - seen > DROP_AFTER_S:
                        del self.backends[port]
                if self.backends:
                    self.last_backend = now
                idle = now - self.last_backend > IDLE_EXIT_S
            if idle:
                self.httpd.shutdown()
                return

    def forward(self, port: int, method: str, path: str, headers: Any, body: bytes) -> tuple[int, list, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        try:
            out = {k: v for k, v in headers.items() if k.lower() not in HOP_HEADERS}
            out["Content-Length"] = str(len(body))
            conn.request(method, path, body=body, headers=out)
            resp = conn.getresponse()
            return resp.status, resp.getheaders(), resp.read()
        finally:
            conn.close()

    def route(self, method: str, path: str, headers: Any, body: bytes) -> tuple[int, list, bytes]:
        bearer = headers.get("Authorization", "")
        with self.lock:
            known = self.owner.get(bearer)
            ports = [known] if known is not None else sorted(self.backends, key=lambda p: -self.backends[p])
        last: tuple[int, list, bytes] = (503, [("Content-Type", "application/json")],
                                         b'{"code": "NO_SERVICE", "message": "no loopback compute service registered"}')
        for port in ports:
            try:
                last = self.forward(port, method, path, headers, body)
            except OSError:
                continue
            if last[0] != 401 or known is not None:
                if bearer and last[0] != 401:
                    with self.lock:
                        self.owner[bearer] = port
                return last
        return last

    def serve(self) -> None:
        threading.Thread(target=self.reaper, daemon=True).start()
        self.httpd.serve_forever(poll_interval=0.2)
        self.httpd.server_close()


def _handler_for(front: Front) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            parts = urlsplit(self.path)
            if parts.path in ("/_front/register", "/_front/unregister"):
                port = int(dict(parse_qsl(parts.query))["port"])
                (front.register if parts.path.endswith("/register") else front.unregister)(port)
                status, headers, payload = 200, [("Content-Type", "application/json")], b"{}"
            else:
                status, headers, payload = front.route(self.command, self.path, self.headers, body)
            self.send_response(status)
            for k, v in headers:
                if k.lower() not in HOP_HEADERS:
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_DELETE = _serve

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
            pass

    return Handler


def main() -> int:
    try:
        front = Front()
    except OSError:
        return 0  # another front already serves the port
    print("ready", flush=True)
    front.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
