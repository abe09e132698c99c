"""A loopback Globus Compute web service over a real RabbitMQ broker.

The unmodified ``globus_compute_sdk`` (Client, Executor) and a real ``globus-compute-endpoint``
process talk to it exactly as to the real service:

- HTTP routes (``/v2``, ``/v3``) the SDK and the endpoint call: version, endpoint registration
  (``POST /v3/endpoints``, ``PUT /v3/endpoints/<id>``), endpoint and status look-ups, function
  registration, batch submit, task and batch status, task group, and the AMQP result connection
  info for the SDK's result watcher (``/v2/get_amqp_result_connection_url``);
- AMQP, as the service forwards work: a submit to a (template-capable) endpoint sends
  ``cmd_start_endpoint`` with the ``user_endpoint_config`` on the endpoint's command queue; the
  endpoint starts a user endpoint whose id and queues depend on that config; each task goes to the
  user endpoint's task queue as a ``globus_compute_common.messagepack`` ``Task`` (function code +
  the SDK's payload) with the function and task ids in the headers; the endpoint's ``Result``
  messages are consumed from the result queue and forwarded to the SDK's task-group queue
  ``<queue_prefix><task_group_id>``; heartbeats are consumed for endpoint status.

Bearer tokens are checked against the loopback Auth service (``tests.globus_service``); the
caller's identity is the client the token was issued to.

The SDK pins the service address (``GLOBUS_SDK_ENVIRONMENT=local`` is http://localhost:5000;
``GLOBUS_SDK_SERVICE_URL_COMPUTE`` is ignored because the SDK passes ``base_url``). So that test
sessions running at once do not fight over that port, each service listens on a free port and
registers with the shared front on 127.0.0.1:5000 (``tests/compute_service/front.py``, started by
whichever service finds none), which forwards each request to the service that issued its token.
"""

from __future__ import annotations

import http.client
import json
import os
import queue
import socket
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import Future
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pika
from globus_compute_common import messagepack
from globus_compute_common.messagepack.message_types import EPStatusReport, Result, Task

from tests.globus_service import GlobusService

Reply = tuple[int, Any]

#: The web service refuses a task whose serialized payload is larger than this (10 MB).
PAYLOAD_LIMIT = 10 * 1024 * 1024
SERVICE_PORT = 5000
RESULTS_EXCHANGE = "xtract_results"
HEARTBEAT_EXCHANGE = "xtract_heartbeats"
RESULTS_QUEUE = "xtract_results"
HEARTBEAT_QUEUE = "xtract_heartbeats"
TASKGROUP_PREFIX = "tg_results_"


@dataclass
class EndpointRecord:
    endpoint_id: str
    name: str
    owner: str
    parent: str | None = None  # a user endpoint's core endpoint
    user_endpoint_config: dict[str, Any] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    last_heartbeat: float = 0.0
    heartbeats: int = 0


@dataclass
class TaskRecord:
    task_id: str
    function_id: str
    task_group_id: str
    endpoint_id: str  # the endpoint the user submitted to
    user_endpoint_id: str  # where it was routed
    payload_bytes: int
    payload: str = ""  # the SDK's packed arguments, for tests that look for a task by what it carries
    status: str = "waiting-for-ep"
    result: Result | None = None
    completed_at: float | None = None


class ComputeService:
    """The emulated web service; ``with ComputeService(globus, broker_url) as svc: ...``."""

    def __init__(self, globus: GlobusService, broker_url: str, *, front_port: int = SERVICE_PORT) -> None:
        self.globus = globus
        self.broker_url = broker_url
        self.payload_limit = PAYLOAD_LIMIT
        self.endpoints: dict[str, EndpointRecord] = {}
        self.functions: dict[str, dict[str, Any]] = {}
        self.tasks: dict[str, TaskRecord] = {}
        self.task_groups: dict[str, list[str]] = {}
        self.commands: list[dict[str, Any]] = []  # every command sent to a core endpoint
        self.submissions: list[dict[str, Any]] = []  # per submit: endpoint, user endpoint, config, task count
        self.log: list[tuple[str, str, int]] = []
        self.lock = threading.Lock()
        self._declared: set[str] = set()
        self._out: queue.Queue[tuple[str, str, bytes, pika.BasicProperties, Future[None]] | None] = queue.Queue()
        self._stop = threading.Event()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.front_port = front_port
        self.url = f"http://localhost:{front_port}"  # what the SDK and the endpoint reach (through the front)
        self._threads: list[threading.Thread] = []

    # -- life cycle ------------------------------------------------------------
    def environ(self) -> dict[str, str]:
        """What points the SDK (and any globus-sdk ComputeClient) here."""
        return {"GLOBUS_SDK_ENVIRONMENT": "local", "GLOBUS_SDK_SERVICE_URL_COMPUTE": f"{self.url}/"}

    def start(self) -> ComputeService:
        self._setup_broker()
        ready = threading.Event()
        for target, args in ((self._publisher, ()), (self._consumer, (ready,)),
                             (self.httpd.serve_forever, ())):
            t = threading.Thread(target=target, args=args, daemon=True, name=f"compute-svc-{target.__name__}")
            t.start()
            self._threads.append(t)
        if not ready.wait(30):
            raise RuntimeError("the compute service could not consume from the broker")
        self._register(timeout_s=300.0)
        t = threading.Thread(target=self._keep_registered, daemon=True, name="compute-svc-front")
        t.start()
        self._threads.append(t)
        return self

    # -- the shared front on port 5000 ----------------------------------------
    def _front_call(self, action: str) -> int:
        conn = http.client.HTTPConnection("127.0.0.1", self.front_port, timeout=10)
        try:
            conn.request("POST", f"/_front/{action}?port={self.port}", body=b"")
            resp = conn.getresponse()
            resp.read()
            return resp.status
        finally:
            conn.close()

    def _register(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        last = ""
        while time.monotonic() < deadline and not self._stop.is_set():
            try:
                status = self._front_call("register")
                if status == 200:
                    return
                last = f"port {self.front_port} answers {status}: not our front (another program holds it)"
            except ConnectionRefusedError:
                front = os.path.join(os.path.dirname(os.path.abspath(__file__)), "front.py")
                subprocess.Popen([sys.executable, front], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL, start_new_session=True)
                last = "no front yet"
            except OSError as exc:
                last = f"{type(exc).__name__}: {exc}"
            time.sleep(0.3)
        raise RuntimeError(f"could not register with the loopback Compute front on 127.0.0.1:{self.front_port} "
                           f"(the SDK reaches GLOBUS_SDK_ENVIRONMENT=local only there): {last}")

    def _keep_registered(self) -> None:
        while not self._stop.wait(5.0):
            try:
                self._register(timeout_s=60.0)
            except RuntimeError:
                pass

    def stop(self) -> None:
        try:
            self._front_call("unregister")
        except OSError:
            pass
        self._stop.set()
        self._out.put(None)
        self.httpd.shutdown()
        self.httpd.server_close()
        for t in self._threads:
            t.join(timeout=10)

    def __enter__(self) -> ComputeService:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- broker ----------------------------------------------------------------
    def _connect(self) -> pika.BlockingConnection:
        return pika.BlockingConnection(pika.URLParameters(self.broker_url))

    def _setup_broker(self) -> None:
        conn = self._connect()
        ch = conn.channel()
        for exch, q in ((RESULTS_EXCHANGE, RESULTS_QUEUE), (HEARTBEAT_EXCHANGE, HEARTBEAT_QUEUE)):
            ch.exchange_declare(exch, exchange_type="direct", durable=True)
            ch.queue_declare(q, durable=True)
            ch.queue_bind(q, exch, routing_key=q)
        conn.close()

    def _declare(self, name: str) -> None:
        """Queues are the service's to create; endpoints and the SDK only consume them (passive declares)."""
        with self.lock:
            if name in self._declared:
                return
        conn = self._connect()
        conn.channel().queue_declare(name, durable=True)
        conn.close()
        with self.lock:
            self._declared.add(name)

    def _publish(self, queue_name: str, body: bytes, props: pika.BasicProperties) -> None:
        done: Future[None] = Future()
        self._out.put(("", queue_name, body, props, done))
        done.result(timeout=60)

    def _publisher(self) -> None:
        conn = self._connect()
        ch = conn.channel()
        ch.confirm_delivery()
        while True:
            try:
                item = self._out.get(timeout=0.5)
            except queue.Empty:
                conn.process_data_events(0)
                continue
            if item is None:
                break
            exch, key, body, props, done = item
            try:
                ch.basic_publish(exch, key, body, props, mandatory=True)
                done.set_result(None)
            except Exception as exc:  # noqa: BLE001 - the submitting request reports it
                done.set_exception(exc)
        conn.close()

    def _consumer(self, ready: threading.Event) -> None:
        conn = self._connect()
        ch = conn.channel()
        ch.basic_consume(RESULTS_QUEUE, self._on_result)
        ch.basic_consume(HEARTBEAT_QUEUE, self._on_heartbeat, auto_ack=True)
        ready.set()
        while not self._stop.is_set():
            conn.process_data_events(0.2)
        conn.close()

    def _on_result(self, ch: Any, deliver: Any, props: pika.BasicProperties, body: bytes) -> None:
        try:
            res = messagepack.unpack(body)
        except Exception:  # noqa: BLE001 - not a message of ours
            ch.basic_ack(deliver.delivery_tag)
            return
        if not isinstance(res, Result):
            ch.basic_ack(deliver.delivery_tag)
            return
        tid = str(res.task_id)
        with self.lock:
            task = self.tasks.get(tid)
            if task is not None:
                task.result = res
                task.status = "failed" if res.is_error else "success"
                task.completed_at = time.time()
        if task is not None:  # forward to the SDK's result watcher, as the service does
            tg_queue = f"{TASKGROUP_PREFIX}{task.task_group_id}"
            ch.basic_publish("", tg_queue, body, pika.BasicProperties(
                content_type="application/octet-stream", delivery_mode=2, timestamp=int(time.time())))
        ch.basic_ack(deliver.delivery_tag)

    def _on_heartbeat(self, ch: Any, deliver: Any, props: pika.BasicProperties, body: bytes) -> None:
        try:
            report = messagepack.unpack(body)
        except Exception:  # noqa: BLE001
            return
        if isinstance(report, EPStatusReport):
            with self.lock:
                ep = self.endpoints.get(str(report.endpoint_id))
                if ep is not None:
                    ep.last_heartbeat = time.time()
                    ep.heartbeats += 1
                    ep.metadata["status_report"] = report.global_state

    def _queue_infos(self, endpoint_id: str) -> dict[str, Any]:
        url = self.broker_url
        hb = {"connection_url": url, "exchange": HEARTBEAT_EXCHANGE, "queue": HEARTBEAT_QUEUE,
              "queue_publish_kwargs": {"exchange": HEARTBEAT_EXCHANGE, "routing_key": HEARTBEAT_QUEUE,
                                       "mandatory": True, "properties": {"delivery_mode": 2}}}
        results = {"connection_url": url, "exchange": RESULTS_EXCHANGE, "queue": RESULTS_QUEUE,
                   "queue_publish_kwargs": {"exchange": RESULTS_EXCHANGE, "routing_key": RESULTS_QUEUE,
                                            "mandatory": True, "properties": {"delivery_mode": 2}}}
        return {"endpoint_id": endpoint_id,
                "command_queue_info": {"connection_url": url, "queue": f"cmd_{endpoint_id}"},
                "task_queue_info": {"connection_url": url, "queue": f"tasks_{endpoint_id}"},
                "result_queue_info": results, "heartbeat_queue_info": hb}

    # -- routes ----------------------------------------------------------------
    def handle(self, method: str, raw_path: str, headers: Any, body: bytes) -> Reply:
        parts = urlsplit(raw_path)
        path, query = parts.path.rstrip("/"), dict(parse_qsl(parts.query))
        bearer = headers.get("Authorization", "").removeprefix("Bearer ")
        with self.globus.lock:
            who = self.globus.access_tokens.get(bearer)
        if who is None:
            return 401, {"code": "UNAUTHORIZED", "message": "Token is not active", "http_status_code": 401}
        data = json.loads(body) if body else {}
        seg = path.strip("/").split("/")
        if seg == ["v2", "version"]:
            return 200, {"api": "1.0.0", "min_sdk_version": "2.0.0", "min_ep_version": "2.0.0",
                         "router": "1.0.0", "forwarder": "1.0.0"}
        if seg == ["v2", "get_amqp_result_connection_url"]:
            return 200, {"connection_url": self.broker_url, "queue_prefix": TASKGROUP_PREFIX}
        if seg == ["v3", "endpoints"] and method == "POST":
            return self._register_endpoint(str(uuid.uuid4()), who, data)
        if seg[:2] == ["v3", "endpoints"] and len(seg) == 3 and method == "PUT":
            return self._register_endpoint(seg[2], who, data)
        if seg[:2] == ["v3", "endpoints"] and len(seg) == 4 and seg[3] == "submit" and method == "POST":
            return self._submit(seg[2], who, data)
        if seg[:2] == ["v2", "endpoints"] and len(seg) == 4 and seg[3] == "status":
            return self._endpoint_status(seg[2])
        if seg[:2] == ["v2", "endpoints"] and len(seg) == 3 and method == "GET":
            ep = self.endpoints.get(seg[2])
            if ep is None:
                return 404, {"code": "ENDPOINT_NOT_FOUND", "message": f"Endpoint {seg[2]} not found"}
            return 200, {"uuid": ep.endpoint_id, "name": ep.name, "owner": ep.owner, "metadata": ep.metadata}
        if seg == ["v3", "functions"] and method == "POST":
            return self._register_function(who, data)
        if seg[:2] == ["v2", "functions"] and len(seg) == 3 and method == "GET":
            fn = self.functions.get(seg[2])
            if fn is None:
                return 404, {"code": "FUNCTION_NOT_FOUND", "message": f"Function {seg[2]} not found"}
            return 200, {"function_uuid": seg[2], "function_name": fn["function_name"],
                         "function_code": fn["function_code"]}
        if seg[:2] == ["v2", "tasks"] and len(seg) == 3:
            return self._task(seg[2])
        if seg == ["v2", "batch_status"] and method == "POST":
            return 200, {"response": "batch", "results": {tid: self._task(tid)[1] for tid in data["task_ids"]}}
        if seg[:2] == ["v2", "taskgroup"] and len(seg) == 3:
            tids = self.task_groups.get(seg[2], [])
            return 200, {"taskgroup_id": seg[2], "create_websockets_queue": True,
                         "tasks": [{"id": t, "created_at": None} for t in tids]}
        return 404, {"code": "NOT_FOUND", "message": f"no route {method} {path} {query or ''}"}

    def _register_endpoint(self, endpoint_id: str, who: str, data: dict[str, Any]) -> Reply:
        with self.lock:
            ep = self.endpoints.get(endpoint_id)
            if ep is not None and ep.owner != who:
                return 403, {"code": "FORBIDDEN", "message": "endpoint belongs to another identity"}
            if ep is None:
                ep = self.endpoints[endpoint_id] = EndpointRecord(endpoint_id, data.get("endpoint_name", ""), who)
            ep.metadata.update(data.get("metadata") or {})
        info = self._queue_infos(endpoint_id)
        self._declare(info["command_queue_info"]["queue"])
        return 200, info

    def _endpoint_status(self, endpoint_id: str) -> Reply:
        ep = self.endpoints.get(endpoint_id)
        if ep is None:
            return 404, {"code": "ENDPOINT_NOT_FOUND", "message": f"Endpoint {endpoint_id} not found"}
        fresh = ep.heartbeats > 0 and time.time() - ep.last_heartbeat < 120
        return 200, {"status": "online" if fresh else "offline", "details": ep.metadata.get("status_report", {})}

    def _register_function(self, who: str, data: dict[str, Any]) -> Reply:
        fid = str(uuid.uuid4())
        with self.lock:
            self.functions[fid] = {"function_name": data.get("function_name"), "function_code": data["function_code"],
                                   "owner": who}
        return 200, {"function_uuid": fid}

    def _task(self, tid: str) -> Reply:
        task = self.tasks.get(tid)
        if task is None:
            return 404, {"code": "TASK_NOT_FOUND", "message": f"Task {tid} not found"}
        doc: dict[str, Any] = {"task_id": tid, "status": task.status, "task_group_id": task.task_group_id,
                               "pending": task.result is None, "completion_t": task.completed_at}
        if task.result is not None:
            doc["result" if not task.result.is_error else "exception"] = task.result.data
            doc["details"] = task.result.details
        return 200, doc

    def user_endpoint_for(self, core_id: str, config: dict[str, Any] | None) -> str:
        """The user endpoint a config maps to: one per (core endpoint, config), as the service keys them."""
        key = json.dumps(config or {}, sort_keys=True)
        return str(uuid.uuid5(uuid.UUID(core_id), key))

    def _submit(self, endpoint_id: str, who: str, data: dict[str, Any]) -> Reply:
        core = self.endpoints.get(endpoint_id)
        if core is None:
            return 404, {"code": "ENDPOINT_NOT_FOUND", "message": f"Endpoint {endpoint_id} not found"}
        for fid, payloads in data["tasks"].items():
            if fid not in self.functions:
                return 404, {"code": "FUNCTION_NOT_FOUND", "message": f"Function {fid} not found"}
            for payload in payloads:
                size = len(payload.encode("utf-8"))
                if size > self.payload_limit:
                    return 413, {"code": "PAYLOAD_TOO_LARGE",
                                 "message": f"Task payload of {size} bytes exceeds the {self.payload_limit}-byte limit"}
        config = data.get("user_endpoint_config")
        uep_id = self.user_endpoint_for(endpoint_id, config)
        creds = self._queue_infos(uep_id)
        self._declare(creds["task_queue_info"]["queue"])
        with self.lock:
            if uep_id not in self.endpoints:
                self.endpoints[uep_id] = EndpointRecord(uep_id, f"uep-{uep_id}", who, endpoint_id, config)
        cmd = {"command": "cmd_start_endpoint", "globus_effective_identity": who,
               "globus_identity_set": [{"sub": who}], "globus_username": f"{who}@clients.auth.globus.org",
               "args": [], "kwargs": {"name": f"uep-{uep_id}", "user_opts": config or {},
                                      "user_runtime": data.get("user_runtime") or {},
                                      "amqp_creds": {k: v for k, v in creds.items() if k != "command_queue_info"}}}
        self._publish(f"cmd_{endpoint_id}", json.dumps(cmd).encode(), pika.BasicProperties(
            content_type="application/json", timestamp=int(time.time()), delivery_mode=2))
        tg = data.get("task_group_id") or str(uuid.uuid4())
        if data.get("create_queue", True):
            self._declare(f"{TASKGROUP_PREFIX}{tg}")
        res_spec = json.dumps(data.get("resource_specification") or None)
        result_serializers = data.get("result_serializers") or []
        out: dict[str, list[str]] = {}
        for fid, payloads in data["tasks"].items():
            code = self.functions[fid]["function_code"]
            for payload in payloads:
                tid = str(uuid.uuid4())
                body = messagepack.pack(Task(task_id=uuid.UUID(tid), task_buffer=code + payload))
                with self.lock:
                    self.tasks[tid] = TaskRecord(tid, fid, tg, endpoint_id, uep_id, len(payload.encode("utf-8")),
                                                 payload)
                    self.task_groups.setdefault(tg, []).append(tid)
                self._publish(creds["task_queue_info"]["queue"], body, pika.BasicProperties(
                    delivery_mode=2, headers={"function_uuid": fid, "task_uuid": tid,
                                              "resource_specification": res_spec,
                                              "result_serializers": result_serializers}))
                out.setdefault(fid, []).append(tid)
        with self.lock:
            self.commands.append(cmd)
            self.submissions.append({"endpoint_id": endpoint_id, "user_endpoint_id": uep_id,
                                     "user_endpoint_config": config, "tasks": sum(len(v) for v in out.values())})
        return 200, {"request_id": str(uuid.uuid4()), "task_group_id": tg, "endpoint_id": endpoint_id, "tasks": out}


def _handler_for(service: ComputeService) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            try:
                status, doc = service.handle(self.command, self.path, self.headers, body)
            except Exception as exc:  # noqa: BLE001 - a bug in the fake must show as a 500, not a hang
                status, doc = 500, {"code": "INTERNAL_ERROR", "message": f"{type(exc).__name__}: {exc}"}
            payload = json.dumps(doc).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            with service.lock:
                service.log.append((self.command, self.path, status))

        do_GET = do_POST = do_PUT = do_DELETE = _serve

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet test output
            pass

    return Handler
