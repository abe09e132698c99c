"""The Transfer side of the loopback Globus service: listings, tasks that really copy.

Each endpoint id maps to a real local directory (its root); an endpoint path
``/a/b`` is ``root/a/b`` (``/~/`` is the root too). Response shapes follow the
Transfer API documentation and globus-sdk's ``globus_sdk.testing`` data (submit,
delete, cancel, stat errors).
"""

from __future__ import annotations

import os
import shutil
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tests.globus_service.synthetic import SyntheticTree

TransferReply = tuple[int, dict[str, Any]]


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def _error(status: int, code: str, message: str, resource: str) -> TransferReply:
    return status, {"code": code, "message": message, "request_id": uuid.uuid4().hex[:9], "resource": resource}


@dataclass
class TransferBehaviour:
    """How the next matching transfer task behaves: 'hang' (ACTIVE forever, faults) or 'fail'."""

    mode: str
    label_contains: str = ""
    fault_code: str = "CONNECTION_FAILED"


@dataclass
class Task:
    doc: dict[str, Any]
    events: list[dict[str, Any]] = field(default_factory=list)
    cancel: threading.Event = field(default_factory=threading.Event)


class TransferState:
    """Endpoints, path faults and tasks of the loopback Transfer service."""

    def __init__(self) -> None:
        self.endpoints: dict[str, str] = {}
        self.forbidden: set[tuple[str, str]] = set()
        self.missing: set[tuple[str, str]] = set()
        self.too_large: set[tuple[str, str]] = set()
        self.behaviours: list[TransferBehaviour] = []
        self.copy_delay_s = 0.0
        self.tasks: dict[str, Task] = {}
        self.submissions: dict[str, str] = {}
        self.lock = threading.Lock()
        self.ls_calls = 0
        self.synthetic: dict[str, SyntheticTree] = {}

    # -- configuration used by tests -----------------------------------------
    def add_endpoint(self, root: str, endpoint_id: str | None = None) -> str:
        ep = endpoint_id or str(uuid.uuid4())
        self.endpoints[ep] = os.path.realpath(root)
        return ep

    def local_path(self, endpoint_id: str, path: str) -> str:
        root = self.endpoints[endpoint_id]
        rel = path[2:] if path.startswith("/~") else path
        target = os.path.realpath(os.path.join(root, rel.lstrip("/")))
        if os.path.commonpath([root, target]) != root:
            raise PermissionError(path)
        return target

    @staticmethod
    def _norm(path: str) -> str:
        return "/" + path.strip("/") if path.strip("/") else "/"

    # -- ls -------------------------------------------------------------------
    def ls(self, endpoint_id: str, query: dict[str, str]) -> TransferReply:
        resource = f"/operation/endpoint/{endpoint_id}/ls"
        with self.lock:
            self.ls_calls += 1
        if endpoint_id not in self.endpoints:
            return _error(404, "EndpointNotFound", f"No such endpoint with id '{endpoint_id}'", resource)
        path = query.get("path", "/~/")
        key = (endpoint_id, self._norm(path))
        if key in self.forbidden:
            return _error(403, "EndpointPermissionDenied",
                          f"Denied by endpoint, Error (list)\nEndpoint: loopback ({endpoint_id})\n"
                          f"Command: MLSD {path}\nMessage: Fatal FTP Response\n---\nDetails: 500 Path not allowed.",
                          resource)
        if key in self.too_large:
            return _error(502, "ExternalError.DirListingFailed.SizeLimit",
                          f"Directory listing of {path} exceeds the size limit", resource)
        tree = self.synthetic.get(endpoint_id)
        if tree is not None:
            return self._synthetic_ls(tree, endpoint_id, path, query, resource)
        try:
            local = self.local_path(endpoint_id, path)
        except PermissionError:
            return _error(403, "EndpointPermissionDenied", f"Path not allowed: {path}", resource)
        if key in self.missing or not os.path.exists(local):
            return _error(404, "ClientError.NotFound",
                          f"Path not found, Error (list)\nEndpoint: loopback ({endpoint_id})\nMessage: No such file "
                          f"or directory\n---\nDetails: Error: '{path}' not found\\r\\n550-GlobusError: v=1 "
                          "c=PATH_NOT_FOUND\\r\\n", resource)
        if not os.path.isdir(local):
            return _error(502, "ExternalError.DirListingFailed.NotDirectory", f"{path} is not a directory", resource)
        limit = min(int(query.get("limit", 100_000)), 100_000)
        offset = int(query.get("offset", 0))
        show_hidden = query.get("show_hidden", "1") not in ("0", "false", "False")
        with os.scandir(local) as it:
            entries = sorted((e for e in it if show_hidden or not e.name.startswith(".")), key=lambda e: e.name)
        page = [self._file_doc(e) for e in entries[offset:offset + limit]]
        return 200, {
            "DATA_TYPE": "file_list", "DATA": page, "endpoint": endpoint_id, "path": path,
            "absolute_path": path, "length": len(page), "total": len(entries), "limit": limit, "offset": offset,
            "has_next_page": offset + limit < len(entries), "rename_supported": True, "symlink_supported": True,
        }

    def add_synthetic_endpoint(self, files: int, dirs: int) -> str:
        """An endpoint whose listings are computed (tests/globus_service/synthetic.py): big trees, no disk."""
        ep = str(uuid.uuid4())
        self.endpoints[ep] = "/nonexistent-synthetic"
        self.synthetic[ep] = SyntheticTree(files, dirs)
        return ep

    @staticmethod
    def _synthetic_ls(tree: SyntheticTree, endpoint_id: str, path: str, query: dict[str, str],
                      resource: str) -> TransferReply:
        entries = tree.entries(path)
        if entries is None:
            return _error(404, "ClientError.NotFound", f"Path not found: '{path}'", resource)
        limit = min(int(query.get("limit", 100_000)), 100_000)
        offset = int(query.get("offset", 0))
        page = [tree.doc(*e) for e in entries[offset:offset + limit]]
        return 200, {
            "DATA_TYPE": "file_list", "DATA": page, "endpoint": endpoint_id, "path": path,
            "absolute_path": path, "length": len(page), "total": len(entries), "limit": limit, "offset": offset,
            "has_next_page": offset + limit < len(entries), "rename_supported": True, "symlink_supported": True,
        }

    @staticmethod
    def _file_doc(entry: os.DirEntry[str]) -> dict[str, Any]:
        try:
            st = entry.stat(follow_symlinks=True)
        except OSError:  # a dangling symlink
            st = entry.stat(follow_symlinks=False)
        kind = "dir" if entry.is_dir() else "file"
        link_target = os.readlink(entry.path) if entry.is_symlink() else None
        return {
            "DATA_TYPE": "file", "name": entry.name, "type": kind, "size": st.st_size,
            "last_modified": datetime.fromtimestamp(int(st.st_mtime), UTC).strftime("%Y-%m-%d %H:%M:%S+00:00"),
            "permissions": f"{st.st_mode & 0o7777:04o}", "user": "loopback", "group": "loopback",
            "link_target": link_target, "link_group": None, "link_last_modified": None, "link_size": None,
            "link_user": None,
        }

    # -- submission -----------------------------------------------------------
    def submit(self, kind: str, body: dict[str, Any]) -> TransferReply:
        resource = f"/{kind}"
        sub = body.get("submission_id")
        if not sub:
            return _error(400, "ClientError.BadRequest", "submission_id is required", resource)
        with self.lock:
            if sub in self.submissions:
                tid = self.submissions[sub]
                return 200, self._accepted(kind, sub, tid, code="Duplicate")
        items = body.get("DATA") or []
        if not items:
            return _error(400, "ClientError.BadRequest.NoTransferItems", f"A {kind} requires at least one item",
                          resource)
        eps = [body.get("source_endpoint"), body.get("destination_endpoint")] if kind == "transfer" else [
            body.get("endpoint")]
        for ep in eps:
            if ep not in self.endpoints:
                return _error(404, "EndpointNotFound", f"No such endpoint with id '{ep}'", resource)
        tid = str(uuid.uuid4())
        label = body.get("label") or ""
        doc = {
            "DATA_TYPE": "task", "task_id": tid, "type": kind.upper(), "status": "ACTIVE", "nice_status": "Queued",
            "label": label, "request_time": _now(), "completion_time": None, "deadline": body.get("deadline"),
            "source_endpoint_id": eps[0], "destination_endpoint_id": eps[-1], "files": 0, "files_transferred": 0,
            "files_skipped": 0, "directories": 0, "bytes_transferred": 0, "faults": 0, "subtasks_total": len(items),
            "subtasks_pending": len(items), "subtasks_succeeded": 0, "subtasks_failed": 0, "subtasks_canceled": 0,
            "fatal_error": None, "is_paused": False, "owner_id": "loopback", "sync_level": body.get("sync_level"),
        }
        task = Task(doc)
        behaviour = next((b for b in self.behaviours if b.label_contains in label), None)
        with self.lock:
            self.tasks[tid] = task
            self.submissions[sub] = tid
            if behaviour is not None:
                self.behaviours.remove(behaviour)
        threading.Thread(target=self._run, args=(task, kind, body, behaviour), daemon=True).start()
        return 202, self._accepted(kind, sub, tid)

    @staticmethod
    def _accepted(kind: str, sub: str, tid: str, code: str = "Accepted") -> dict[str, Any]:
        return {
            "DATA_TYPE": f"{kind}_result", "code": code,
            "message": f"The {kind} has been accepted and a task has been created and queued for execution",
            "request_id": uuid.uuid4().hex[:9], "resource": f"/{kind}", "submission_id": sub, "task_id": tid,
            "task_link": {"DATA_TYPE": "link", "href": f"/v0.10/task/{tid}?format=json", "rel": "related",
                          "resource": "task", "title": "related task"},
        }

    def _event(self, task: Task, code: str, description: str, *, error: bool) -> None:
        with self.lock:
            task.events.append({"DATA_TYPE": "event", "code": code, "description": description, "details": "",
                                "is_error": error, "time": _now()})
            if error:
                task.doc["faults"] += 1

    def _finish(self, task: Task, status: str, fatal: dict[str, str] | None = None) -> None:
        with self.lock:
            task.doc.update(status=status, completion_time=_now(), fatal_error=fatal, subtasks_pending=0,
                            nice_status=None if status == "SUCCEEDED" else (fatal or {}).get("code"))

    def _run(self, task: Task, kind: str, body: dict[str, Any], behaviour: TransferBehaviour | None) -> None:
        if behaviour is not None and behaviour.mode == "hang":
            with self.lock:
                task.doc["nice_status"] = behaviour.fault_code
            while not task.cancel.wait(0.2):
                self._event(task, behaviour.fault_code, "the destination endpoint did not respond", error=True)
            self._finish(task, "FAILED", {"code": "CANCELED", "description": "The task was canceled by the user"})
            return
        if behaviour is not None and behaviour.mode == "fail":
            self._event(task, behaviour.fault_code, "permission denied on the destination", error=True)
            self._finish(task, "FAILED", {"code": behaviour.fault_code, "description": "the task failed"})
            return
        with self.lock:
            task.doc["nice_status"] = "OK"
        if self.copy_delay_s:
            time.sleep(self.copy_delay_s)
        try:
            if kind == "transfer":
                self._copy(task, body)
            else:
                self._delete(task, body)
        except OSError as exc:
            self._event(task, "FILE_NOT_FOUND" if isinstance(exc, FileNotFoundError) else "PERMISSION_DENIED",
                        str(exc), error=True)
            self._finish(task, "FAILED", {"code": "FILE_NOT_FOUND", "description": str(exc)})
            return
        if task.cancel.is_set():
            self._finish(task, "FAILED", {"code": "CANCELED", "description": "The task was canceled by the user"})
            return
        self._event(task, "SUCCEEDED", "the task succeeded", error=False)
        self._finish(task, "SUCCEEDED")

    def _copy(self, task: Task, body: dict[str, Any]) -> None:
        src_ep, dst_ep = body["source_endpoint"], body["destination_endpoint"]
        copy = shutil.copy2 if body.get("preserve_timestamp") else shutil.copyfile
        for item in body["DATA"]:
            src = self.local_path(src_ep, item["source_path"])
            dst = self.local_path(dst_ep, item["destination_path"])
            pairs = []
            if item.get("recursive"):
                for dirpath, _dirs, names in os.walk(src):
                    for n in names:
                        s = os.path.join(dirpath, n)
                        pairs.append((s, os.path.join(dst, os.path.relpath(s, src))))
            else:
                pairs.append((src, dst))
            for s, d in pairs:
                if task.cancel.is_set():
                    return
                os.makedirs(os.path.dirname(d), exist_ok=True)
                copy(s, d)
                with self.lock:
                    task.doc["files"] += 1
                    task.doc["files_transferred"] += 1
                    task.doc["bytes_transferred"] += os.path.getsize(d)
            with self.lock:
                task.doc["subtasks_succeeded"] += 1

    def _delete(self, task: Task, body: dict[str, Any]) -> None:
        for item in body["DATA"]:
            local = self.local_path(body["endpoint"], item["path"])
            if os.path.isdir(local) and not os.path.islink(local):
                if not body.get("recursive"):
                    raise IsADirectoryError(item["path"])
                shutil.rmtree(local)
            elif os.path.lexists(local):
                os.unlink(local)
            with self.lock:
                task.doc["subtasks_succeeded"] += 1

    # -- task routes ----------------------------------------------------------
    def task(self, tid: str) -> TransferReply:
        with self.lock:
            task = self.tasks.get(tid)
            return (200, dict(task.doc)) if task else _error(404, "TaskNotFound", f"Task {tid} not found", "/task")

    def event_list(self, tid: str, query: dict[str, str]) -> TransferReply:
        with self.lock:
            task = self.tasks.get(tid)
            if task is None:
                return _error(404, "TaskNotFound", f"Task {tid} not found", "/task")
            events = list(reversed(task.events))  # newest first, as the service does
        limit, offset = int(query.get("limit", 10)), int(query.get("offset", 0))
        page = events[offset:offset + limit]
        return 200, {"DATA_TYPE": "event_list", "DATA": page, "length": len(page), "limit": limit, "offset": offset,
                     "total": len(events), "has_next_page": offset + limit < len(events)}

    def cancel(self, tid: str) -> TransferReply:
        with self.lock:
            task = self.tasks.get(tid)
        if task is None:
            return _error(404, "TaskNotFound", f"Task {tid} not found", "/task")
        if task.doc["status"] in ("SUCCEEDED", "FAILED"):
            return 200, {"DATA_TYPE": "result", "code": "TaskComplete", "message": "The task already completed",
                         "resource": f"/task/{tid}/cancel", "request_id": uuid.uuid4().hex[:9]}
        task.cancel.set()
        deadline = time.monotonic() + 2.0  # the real service answers once the task has stopped
        while task.doc["status"] == "ACTIVE" and time.monotonic() < deadline:
            time.sleep(0.02)
        return 200, {"DATA_TYPE": "result", "code": "Canceled", "message": "The task has been cancelled successfully.",
                     "resource": f"/task/{tid}/cancel", "request_id": uuid.uuid4().hex[:9]}
