"""A dry-run stand-in for a Globus Compute endpoint, behind the SDK Executor's interface.

Not on the production path (``GlobusComputeSettings(backend="local-standin")`` only): users who want
to check, without an endpoint or a Globus account, that a deployment's batches fit the limits and
that the extractors run where only ``extractors`` is importable use this Executor. The production
path, ``globus_compute_sdk.Executor`` against a real endpoint, is what the tests run
(tests/compute_service: a real RabbitMQ broker and a real ``globus-compute-endpoint``).

It keeps what matters of the real thing: functions are registered once and called by id, every
payload is packed with the SDK's ComputeSerializer and refused over the 10 MB limit, results over
the limit fail with the SDK's ``MaxResultSizeExceeded``, remote exceptions come back as the SDK's
``TaskExecutionFailed``, each submission records (in ``submissions.jsonl``) the
``user_endpoint_config`` (container choice) in force when it was made, and the code runs in separate
worker processes where only ``extractors`` is importable.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any

from globus_compute_sdk.errors import MaxResultSizeExceeded, TaskExecutionFailed
from globus_compute_sdk.serialize import ComputeSerializer

from tasks.pools.globus_compute.sizing import PAYLOAD_LIMIT, make_serializer
from xtract_blocks.errors import PayloadTooLarge, TaskLost

WORKER_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_standin_worker.py")
EXTRACTORS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                              "extractors")


def store_function(state_dir: str, code: str) -> str:
    """The stand-in's function service: keep serialized code under a fresh id (ids never repeat)."""
    fid = str(uuid.uuid4())
    path = os.path.join(state_dir, "functions", fid)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".tmp", "w", encoding="utf-8") as fh:
        fh.write(code)
    os.replace(path + ".tmp", path)
    return fid


def registered_functions(state_dir: str) -> list[str]:
    """Ids the stand-in's function service holds."""
    try:
        return sorted(n for n in os.listdir(os.path.join(state_dir, "functions")) if not n.endswith(".tmp"))
    except FileNotFoundError:
        return []


class _Worker(threading.Thread):
    """Feeds tasks from the queue to one worker process, restarting it when it dies."""

    def __init__(self, owner: LocalComputeEndpoint, n: int) -> None:
        super().__init__(name=f"compute-standin-{n}", daemon=True)
        self.owner = owner
        self.proc: subprocess.Popen[bytes] | None = None

    def _spawn(self) -> subprocess.Popen[bytes]:
        o = self.owner
        return subprocess.Popen(
            [sys.executable, WORKER_SCRIPT, o.site_dir, str(o.result_limit), str(o.memory_limit_mb or 0)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=o.stderr, cwd=o.state_dir,
            env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
        )

    def run(self) -> None:
        while True:
            item = self.owner._queue.get()
            if item is None:
                break
            fut, fid, payload = item
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                reply = self._call({"fid": fid, "code": self.owner._code(fid), "payload": payload})
            except BaseException as exc:  # noqa: BLE001 - the future carries any failure
                fut.set_exception(exc)
                continue
            if reply["ok"]:
                fut.set_result(self.owner.serializer.deserialize(reply["result"]))
            elif reply["kind"] == "MaxResultSizeExceeded":
                fut.set_exception(MaxResultSizeExceeded(reply["size"], self.owner.result_limit))
            else:
                fut.set_exception(TaskExecutionFailed(reply["error"]))
        self.kill()

    def _call(self, msg: dict[str, Any]) -> dict[str, Any]:
        if self.proc is None or self.proc.poll() is not None:
            self.proc = self._spawn()
        proc = self.proc
        data = json.dumps(msg).encode("utf-8")
        try:
            proc.stdin.write(b"%d\n" % len(data) + data)  # type: ignore[union-attr]
            proc.stdin.flush()  # type: ignore[union-attr]
            line = proc.stdout.readline()  # type: ignore[union-attr]
            if not line:
                raise EOFError
            return json.loads(proc.stdout.read(int(line)))  # type: ignore[union-attr]
        except (EOFError, BrokenPipeError, ValueError, OSError):
            code = proc.wait()
            self.proc = None
            raise TaskLost(f"TaskLost: the compute worker process exited with code {code}") from None

    def kill(self) -> None:
        proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()


class LocalComputeEndpoint(Executor):
    """A concurrent.futures.Executor with globus_compute_sdk.Executor's registration and submit calls."""

    def __init__(self, endpoint_id: str, *, state_dir: str, workers: int = 2, payload_limit: int = PAYLOAD_LIMIT,
                 result_limit: int = PAYLOAD_LIMIT, memory_limit_mb: int | None = None,
                 serializer: ComputeSerializer | None = None,
                 user_endpoint_config: dict[str, Any] | None = None) -> None:
        self.endpoint_id = endpoint_id
        self.state_dir = os.path.abspath(state_dir)
        self.payload_limit = payload_limit
        self.result_limit = result_limit
        self.memory_limit_mb = memory_limit_mb
        self.serializer = serializer or make_serializer()
        self.user_endpoint_config = user_endpoint_config
        os.makedirs(os.path.join(self.state_dir, "functions"), exist_ok=True)
        self.site_dir = os.path.join(self.state_dir, "site")
        os.makedirs(self.site_dir, exist_ok=True)
        link = os.path.join(self.site_dir, "extractors")
        if not os.path.islink(link):
            try:
                os.symlink(EXTRACTORS_DIR, link)
            except FileExistsError:
                pass
        self.stderr = open(os.path.join(self.state_dir, "workers.log"), "ab")  # noqa: SIM115 - closed on shutdown
        #: The service's view of each task: function id, payload size and the container it was asked to run in.
        self._log = open(os.path.join(self.state_dir, "submissions.jsonl"), "a", encoding="utf-8")  # noqa: SIM115
        self._queue: queue.Queue[Any] = queue.Queue()
        self._lock = threading.Lock()
        self._closed = False
        self._workers = [_Worker(self, n) for n in range(max(1, workers))]
        for w in self._workers:
            w.start()

    # -- the function service ------------------------------------------------
    def register_function(self, fn: Callable[..., Any], **_: Any) -> str:
        """Store the serialized function under a new id, as the web service does."""
        return store_function(self.state_dir, self.serializer.serialize(fn))

    def _code(self, fid: str) -> str:
        try:
            with open(os.path.join(self.state_dir, "functions", fid), encoding="utf-8") as fh:
                return fh.read()
        except FileNotFoundError:
            raise TaskExecutionFailed(f"FunctionNotFound: no function registered with id {fid}") from None

    # -- submission ------------------------------------------------------------
    def submit_to_registered_function(self, function_id: str, args: tuple[Any, ...] | None = None,
                                      kwargs: dict[str, Any] | None = None) -> Future[Any]:
        fut: Future[Any] = Future()
        payload = self.serializer.pack_buffers([self.serializer.serialize(tuple(args or ())),
                                                self.serializer.serialize(dict(kwargs or {}))])
        size = len(payload.encode("utf-8"))
        if size > self.payload_limit:
            fut.set_exception(PayloadTooLarge(
                f"task payload of {size} bytes exceeds the {self.payload_limit}-byte limit"))
            return fut
        with self._lock:
            if self._closed:
                raise RuntimeError("cannot submit to a shut-down executor")
            self._log.write(json.dumps({"function_id": function_id, "payload_bytes": size,
                                        "user_endpoint_config": self.user_endpoint_config}) + "\n")
            self._log.flush()
            self._queue.put((fut, function_id, payload))
        return fut

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        """Like the SDK Executor: register the function (once per executor), then submit to it."""
        with self._lock:
            cache = self.__dict__.setdefault("_fn_ids", {})
            fid = cache.get(fn) or cache.setdefault(fn, self.register_function(fn))
        return self.submit_to_registered_function(fid, args, kwargs)

    # -- lifecycle ---------------------------------------------------------------
    def kill(self) -> None:
        """Kill every worker process now; their running tasks fail with TaskLost."""
        for w in self._workers:
            w.kill()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        if cancel_futures:
            while True:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is not None:
                    item[0].cancel()
        for _ in self._workers:
            self._queue.put(None)
        if wait:
            for w in self._workers:
                w.join()
            self.stderr.close()
            self._log.close()
