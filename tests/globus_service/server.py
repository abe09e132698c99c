"""A loopback Globus service (Auth token grant, Transfer, Search) on 127.0.0.1 for tests and benches.

globus-sdk is pointed here through ``GLOBUS_SDK_SERVICE_URL_{AUTH,TRANSFER,SEARCH}``
(see ``GlobusService.environ``), so the production clients run unchanged. Faults
are injected per route: latency, 429 + Retry-After, 502/503, dropped connections;
path faults and transfer behaviours live on ``service.transfer``.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from tests.globus_service.transfer import TransferState

Reply = tuple[int, dict[str, Any]]


@dataclass
class Fault:
    """Answer ``times`` matching requests (every ``every``-th one) with ``status``, or drop the connection."""

    route: str
    times: int
    status: int = 503
    retry_after: int | None = None
    drop: bool = False
    every: int = 1
    seen: int = 0


class SearchState:
    """Indices, ingest tasks and the documents ingested."""

    def __init__(self) -> None:
        self.indices: dict[str, dict[tuple[str, str], dict[str, Any]]] = {}
        self.tasks: dict[str, dict[str, Any]] = {}
        self.max_ingest_bytes = 10 * 1024 * 1024
        self.fail_ingest = False
        self.ingest_requests = 0
        self.lock = threading.Lock()

    def add_index(self) -> str:
        index_id = str(uuid.uuid4())
        self.indices[index_id] = {}
        return index_id

    def ingest(self, index_id: str, raw: bytes) -> Reply:
        if index_id not in self.indices:
            return 404, {"code": "NotFound.NoSuchIndex", "message": f"no index {index_id}", "status": 404}
        if len(raw) > self.max_ingest_bytes:
            return 413, {"code": "RequestTooLarge", "message": f"ingest of {len(raw)} bytes is over the limit",
                         "status": 413}
        body = json.loads(raw)
        if body.get("ingest_type") != "GMetaList":
            return 400, {"code": "BadRequest", "message": "only GMetaList is served here", "status": 400}
        gmeta = body["ingest_data"]["gmeta"]
        for entry in gmeta:
            if not entry.get("subject") or not entry.get("visible_to") or "content" not in entry:
                return 400, {"code": "BadRequest.ValidationError", "message": "entry lacks subject/visible_to/content",
                             "status": 400}
        tid = str(uuid.uuid4())
        now = datetime.now(UTC).isoformat()
        with self.lock:
            self.ingest_requests += 1
            state = "FAILED" if self.fail_ingest else "SUCCESS"
            if not self.fail_ingest:
                for entry in gmeta:
                    self.indices[index_id][(entry["subject"], entry.get("id", ""))] = entry
            self.tasks[tid] = {"task_id": tid, "state": state, "state_description": f"Task {state.lower()}",
                               "task_type": "INGEST", "index_id": index_id, "creation_date": now,
                               "completion_date": now, "polls": 0,
                               "message": "simulated ingest failure" if state == "FAILED" else "",
                               "additional_details": {"num_gmeta_entries": len(gmeta)}}
        return 200, {"acknowledged": True, "task_id": tid, "success": True, "num_documents_ingested": len(gmeta),
                     "as_identity": "loopback"}

    def task(self, tid: str) -> Reply:
        with self.lock:
            task = self.tasks.get(tid)
            if task is None:
                return 404, {"code": "NotFound.Generic", "message": f"no task {tid}", "status": 404}
            task["polls"] += 1
            doc = {k: v for k, v in task.items() if k != "polls"}
            if task["polls"] == 1:  # the first poll sees it still pending, as a real queue would
                doc.update(state="PENDING", completion_date=None)
            return 200, doc


class GlobusService:
    """The loopback service; use as a context manager."""

    def __init__(self) -> None:
        self.transfer = TransferState()
        self.search = SearchState()
        self.clients: dict[str, str] = {}
        self.refresh_tokens: dict[str, tuple[str, str]] = {}
        self.access_tokens: dict[str, str] = {}  # access token -> the client it was issued to
        self.faults: list[Fault] = []
        self.ls_latency_s = 0.0
        self.latency_s = 0.0
        self.ls_in_flight = 0
        self.ls_max_in_flight = 0
        self.log: deque[tuple[float, str, str, int]] = deque(maxlen=200_000)
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self.httpd.daemon_threads = True
        self.httpd.request_queue_size = 128
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread: threading.Thread | None = None

    # -- set-up ---------------------------------------------------------------
    def add_client(self, client_id: str | None = None, secret: str | None = None) -> tuple[str, str]:
        cid, sec = client_id or str(uuid.uuid4()), secret or uuid.uuid4().hex
        self.clients[cid] = sec
        return cid, sec

    def add_refresh_token(self, client_id: str, resource_server: str) -> str:
        token = f"rt-{uuid.uuid4().hex}"
        self.refresh_tokens[token] = (client_id, resource_server)
        return token

    def environ(self) -> dict[str, str]:
        """The environment that points globus-sdk at this service."""
        return {"GLOBUS_SDK_SERVICE_URL_AUTH": f"{self.url}/auth/",
                "GLOBUS_SDK_SERVICE_URL_TRANSFER": f"{self.url}/transfer/",
                "GLOBUS_SDK_SERVICE_URL_SEARCH": f"{self.url}/search/"}

    def inject(self, route: str, times: int, **kwargs: Any) -> Fault:
        fault = Fault(route, times, **kwargs)
        with self.lock:
            self.faults.append(fault)
        return fault

    def requests_to(self, route: str) -> list[tuple[float, str, str, int]]:
        return [r for r in list(self.log) if route in r[2]]

    def start(self) -> GlobusService:
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        for task in self.transfer.tasks.values():
            task.cancel.set()

    def __enter__(self) -> GlobusService:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- dispatch -------------------------------------------------------------
    def _fault_for(self, path: str) -> Fault | None:
        with self.lock:  # faults are served in the order injected: the first unexhausted matching one decides
            fault = next((f for f in self.faults if f.times > 0 and f.route in path), None)
            if fault is None:
                return None
            fault.seen += 1
            if fault.seen % fault.every:
                return None
            fault.times -= 1
            return fault

    def _token(self, form: dict[str, str], auth_header: str) -> Reply:
        grant = form.get("grant_type")
        if grant == "client_credentials":
            try:
                cid, secret = base64.b64decode(auth_header.split(" ", 1)[1]).decode().split(":", 1)
            except (IndexError, ValueError):
                return 401, {"error": "invalid_client", "errors": [{"code": "UNAUTHORIZED", "status": "401"}]}
            if self.clients.get(cid) != secret:
                return 401, {"error": "invalid_client", "errors": [{"code": "UNAUTHORIZED", "status": "401"}]}
            scopes = form.get("scope", "").split()
        elif grant == "refresh_token":
            owner = self.refresh_tokens.get(form.get("refresh_token", ""))
            if owner is None:
                return 400, {"error": "invalid_grant", "errors": [{"code": "INVALID_GRANT", "status": "400"}]}
            scopes = [f"urn:globus:auth:scope:{owner[1]}:all"]
        else:
            return 400, {"error": "unsupported_grant_type"}
        owner_id = cid if grant == "client_credentials" else owner[0]
        by_rs: dict[str, list[str]] = {}
        for scope in scopes:  # one token per resource server, as Globus Auth answers
            by_rs.setdefault(_resource_server(scope), []).append(scope)
        tokens = []
        for rs, rs_scopes in by_rs.items():
            access = f"at-{uuid.uuid4().hex}"
            with self.lock:
                self.access_tokens[access] = owner_id
            tokens.append({"access_token": access, "scope": " ".join(rs_scopes), "resource_server": rs,
                           "expires_in": 172800, "token_type": "Bearer"})
        if not tokens:
            return 400, {"error": "invalid_scope"}
        return 200, {**tokens[0], "other_tokens": tokens[1:]}

    def handle(self, method: str, raw_path: str, headers: Any, body: bytes) -> Reply | None:
        """Route one request; None means drop the connection."""
        parts = urlsplit(raw_path)
        path, query = parts.path, dict(parse_qsl(parts.query))
        fault = self._fault_for(path)
        is_ls = path.endswith("/ls")
        if is_ls:
            with self.lock:
                self.ls_in_flight += 1
                self.ls_max_in_flight = max(self.ls_max_in_flight, self.ls_in_flight)
        try:
            time.sleep(self.ls_latency_s if is_ls else self.latency_s)
        finally:
            if is_ls:
                with self.lock:
                    self.ls_in_flight -= 1
        if fault is not None:
            if fault.drop:
                return None
            return fault.status, {"code": "TooManyRequests" if fault.status == 429 else "ServiceUnavailable",
                                  "message": "injected fault", "request_id": uuid.uuid4().hex[:9],
                                  "_retry_after": fault.retry_after}
        if path == "/auth/v2/oauth2/token" and method == "POST":
            return self._token(dict(parse_qsl(body.decode())), headers.get("Authorization", ""))
        bearer = headers.get("Authorization", "").removeprefix("Bearer ")
        with self.lock:
            authorized = bearer in self.access_tokens
        if not authorized:
            return 401, {"code": "AuthenticationFailed", "message": "Token is not active", "request_id": "x"}
        if path == "/auth/v2/oauth2/userinfo":  # a client's identity is its client id (as in Globus Auth)
            sub = self.access_tokens[bearer]
            ident = {"sub": sub, "username": f"{sub}@clients.auth.globus.org", "name": None, "email": None,
                     "identity_provider": "loopback", "identity_provider_display_name": "loopback"}
            return 200, {**ident, "preferred_username": ident["username"], "identity_set": [ident]}
        seg = path.strip("/").split("/")
        if seg[:2] == ["transfer", "v0.10"]:
            return self._transfer(method, seg[2:], query, body)
        if seg[:2] == ["search", "v1"]:
            if method == "POST" and len(seg) == 5 and seg[2] == "index" and seg[4] == "ingest":
                return self.search.ingest(seg[3], body)
            if method == "GET" and len(seg) == 4 and seg[2] == "task":
                return self.search.task(seg[3])
        return 404, {"code": "NotFound", "message": f"no route {method} {path}"}

    def _transfer(self, method: str, seg: list[str], query: dict[str, str], body: bytes) -> Reply:
        t = self.transfer
        if method == "GET" and len(seg) == 4 and seg[:2] == ["operation", "endpoint"] and seg[3] == "ls":
            return t.ls(seg[2], query)
        if method == "GET" and seg == ["submission_id"]:
            return 200, {"value": str(uuid.uuid4())}
        if method == "POST" and seg in (["transfer"], ["delete"]):
            return t.submit(seg[0], json.loads(body or b"{}"))
        if seg[:1] == ["task"] and len(seg) == 2 and method == "GET":
            return t.task(seg[1])
        if seg[:1] == ["task"] and len(seg) == 3 and seg[2] == "event_list" and method == "GET":
            return t.event_list(seg[1], query)
        if seg[:1] == ["task"] and len(seg) == 3 and seg[2] == "cancel" and method == "POST":
            return t.cancel(seg[1])
        return 404, {"code": "NotFound", "message": f"no route {method} /{'/'.join(seg)}"}


#: Scopes whose resource server is not the one written in them (Globus Auth's registered names).
_KNOWN_SCOPES = {"https://auth.globus.org/scopes/facd7ccc-c5f4-42aa-916b-a0e270e2c2a9/all": "funcx_service",
                 "openid": "auth.globus.org", "email": "auth.globus.org", "profile": "auth.globus.org"}


def _resource_server(scope: str) -> str:
    if scope in _KNOWN_SCOPES:
        return _KNOWN_SCOPES[scope]
    return scope.split(":")[4] if scope.startswith("urn:") else scope.split("/")[4]


def _handler_for(service: GlobusService) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            # headers and body go out in separate writes: without NODELAY, Nagle + delayed ACK add ~40 ms each
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            try:
                reply = service.handle(self.command, self.path, self.headers, body)
            except Exception as exc:  # noqa: BLE001 - a bug in the fake must show as a 500, not a hang
                reply = 500, {"code": "InternalError", "message": f"{type(exc).__name__}: {exc}"}
            if reply is None:
                service.log.append((time.monotonic(), self.command, self.path, 0))
                self.close_connection = True
                self.connection.shutdown(2)
                return
            status, doc = reply
            retry_after = doc.pop("_retry_after", None)
            payload = json.dumps(doc).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            if retry_after is not None:
                self.send_header("Retry-After", str(retry_after))
            self.end_headers()
            self.wfile.write(payload)
            service.log.append((time.monotonic(), self.command, self.path, status))

        do_GET = do_POST = do_PUT = do_DELETE = _serve

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet test output
            pass

    return Handler


def apply_environ(service: GlobusService) -> dict[str, str | None]:
    """Point globus-sdk at the service; returns the previous values for restore_environ."""
    previous = {k: os.environ.get(k) for k in service.environ()}
    os.environ.update(service.environ())
    return previous


def restore_environ(previous: dict[str, str | None]) -> None:
    for key, value in previous.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
