"""One Globus transfer helper for offload and for staging data to where extractors run.

``transfer_and_wait`` is the whole API: submit a TransferData under a fresh
``submission_id`` (globus-sdk retries the POST on 5xx/network errors, and the
service deduplicates by submission id, so a retried submit never runs twice),
poll ``get_task`` every ``poll_interval_s`` until SUCCEEDED, and raise on FAILED.
ACTIVE is not trusted forever: past ``timeout_s`` (or when fault events have
persisted for ``fault_timeout_s``) the task is cancelled and a TransferTimeout
raised, naming the last fault event. The source is deleted (DeleteData, waited on
the same way) only after the transfer SUCCEEDED.
"""

from __future__ import annotations

import logging
import os
import posixpath
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

import globus_sdk

from xtract_blocks.credentials import GlobusCredentials
from xtract_blocks.errors import TransferFailed, TransferTimeout

log = logging.getLogger(__name__)

#: (source path, destination path, recursive)
Item = tuple[str, str, bool]


@dataclass
class TransferResult:
    task_id: str
    submission_id: str
    files_transferred: int
    bytes_transferred: int
    seconds: float
    delete_task_id: str | None = None


def transfer_and_wait(client: globus_sdk.TransferClient, source_ep: str, dest_ep: str, items: Iterable[Item], *,
                      label: str = "prefect-xtract", timeout_s: float = 3600.0, poll_interval_s: float = 5.0,
                      fault_timeout_s: float | None = None, delete_source: bool = False,
                      preserve_timestamp: bool = True) -> TransferResult:
    """Copy ``items`` from ``source_ep`` to ``dest_ep`` and wait; optionally delete the source after success.

    Raises TransferFailed when the task fails, TransferTimeout (after cancelling it)
    when it outlives ``timeout_s`` or faults for longer than ``fault_timeout_s``.
    """
    items = list(items)
    if not items:
        raise TransferFailed("nothing to transfer")
    started = time.monotonic()
    submission_id = str(client.get_submission_id()["value"])
    data = globus_sdk.TransferData(source_ep, dest_ep, label=label[:128], submission_id=submission_id,
                                   preserve_timestamp=preserve_timestamp)
    for src, dst, recursive in items:
        data.add_item(src, dst, recursive=recursive)
    task_id = _submit(client.submit_transfer, data)
    log.info("transfer %s submitted: %d item(s) %s -> %s", task_id, len(items), source_ep, dest_ep)
    task = wait_for_task(client, task_id, timeout_s=timeout_s, poll_interval_s=poll_interval_s,
                         fault_timeout_s=fault_timeout_s)
    result = TransferResult(task_id, submission_id, int(task.get("files_transferred") or 0),
                            int(task.get("bytes_transferred") or 0), time.monotonic() - started)
    if delete_source:
        result.delete_task_id = delete_and_wait(client, source_ep, [src for src, _, _ in items],
                                                recursive=any(r for _, _, r in items), label=f"{label} cleanup",
                                                timeout_s=timeout_s, poll_interval_s=poll_interval_s,
                                                fault_timeout_s=fault_timeout_s)
    result.seconds = time.monotonic() - started
    return result


def delete_and_wait(client: globus_sdk.TransferClient, endpoint: str, paths: Iterable[str], *, recursive: bool,
                    label: str = "prefect-xtract cleanup", timeout_s: float = 3600.0, poll_interval_s: float = 5.0,
                    fault_timeout_s: float | None = None, ignore_missing: bool = False) -> str:
    """Delete ``paths`` on ``endpoint`` with one DeleteData task and wait for it; returns the task id.

    Submitted under a fresh submission id like transfers, so a retried POST never deletes twice;
    ``ignore_missing`` lets cleanup of a partly staged batch succeed.
    """
    ddata = globus_sdk.DeleteData(endpoint, recursive=recursive, label=label[:128], ignore_missing=ignore_missing,
                                  submission_id=str(client.get_submission_id()["value"]))
    for path in paths:
        ddata.add_item(path)
    task_id = _submit(client.submit_delete, ddata)
    wait_for_task(client, task_id, timeout_s=timeout_s, poll_interval_s=poll_interval_s,
                  fault_timeout_s=fault_timeout_s)
    return task_id


def _submit(submit: Any, data: Any) -> str:
    try:
        return str(submit(data)["task_id"])
    except globus_sdk.GlobusAPIError as exc:
        raise TransferFailed(f"submission rejected: HTTP {exc.http_status} {exc.code}: {exc.message}",
                             code=exc.code) from None


def last_fault(client: globus_sdk.TransferClient, task_id: str) -> dict[str, Any] | None:
    """The newest error event of a task, if any (the service lists events newest first)."""
    try:
        for event in client.task_event_list(task_id, limit=10):
            if event.get("is_error"):
                return dict(event)
    except globus_sdk.GlobusAPIError:
        return None
    return None


def _describe(event: dict[str, Any] | None) -> str:
    return f"{event.get('code')}: {event.get('description')}" if event else "no fault event"


def wait_for_task(client: globus_sdk.TransferClient, task_id: str, *, timeout_s: float, poll_interval_s: float,
                  fault_timeout_s: float | None = None) -> dict[str, Any]:
    """Poll a transfer or delete task to SUCCEEDED; cancel and raise when it fails, hangs or keeps faulting."""
    deadline = time.monotonic() + timeout_s
    faulting_since: float | None = None
    last_faults = 0
    delay = min(0.25, poll_interval_s)  # short tasks return fast; long ones are polled every poll_interval_s
    while True:
        task = client.get_task(task_id).data
        status = task.get("status")
        if status == "SUCCEEDED":
            return task
        if status == "FAILED":
            fatal = task.get("fatal_error") or {}
            event = last_fault(client, task_id)
            raise TransferFailed(f"task {task_id} FAILED: {fatal.get('code') or 'unknown'} "
                                 f"({fatal.get('description') or _describe(event)})", task_id=task_id,
                                 code=fatal.get("code"))
        now = time.monotonic()
        faults = int(task.get("faults") or 0)
        if faults > last_faults or status == "INACTIVE":
            faulting_since = faulting_since or now
        elif task.get("nice_status") in (None, "OK", "Queued"):
            faulting_since = None
        last_faults = faults
        kept_faulting = fault_timeout_s is not None and faulting_since is not None and (
            now - faulting_since >= fault_timeout_s)
        if now >= deadline or kept_faulting:
            event = last_fault(client, task_id)
            cancel_task(client, task_id)
            why = f"kept faulting for {fault_timeout_s:.0f}s" if kept_faulting else f"not done after {timeout_s:.0f}s"
            raise TransferTimeout(f"task {task_id} {why} (status {status}, {faults} fault(s), last: "
                                  f"{_describe(event)}); cancelled", task_id=task_id,
                                  code=(event or {}).get("code"))
        time.sleep(max(0.0, min(delay, deadline - now)))
        delay = min(delay * 2, poll_interval_s)


def cancel_task(client: globus_sdk.TransferClient, task_id: str) -> str:
    """Cancel a task; returns the service's answer code (Canceled, TaskComplete, ...)."""
    try:
        code = str(client.cancel_task(task_id).get("code"))
    except globus_sdk.GlobusAPIError as exc:
        code = str(exc.code)
    log.warning("transfer task %s cancel: %s", task_id, code)
    return code


def collection_to_host(path: str, root: str) -> str:
    """Where a collection path lies on the hosts that serve the collection (its '/' is ``root``)."""
    return posixpath.join(root, posixpath.normpath("/" + path).lstrip("/")) if path.strip("/") else root


def to_endpoint_path(local_path: str, local_ep_root: str = "/") -> str:
    """Where a local file appears on the collection that exposes this machine (its '/' is ``local_ep_root``)."""
    root = os.path.realpath(local_ep_root)
    target = os.path.realpath(local_path)
    if os.path.commonpath([root, target]) != root:
        raise ValueError(f"{local_path} is not under the local collection's root {local_ep_root}")
    rel = os.path.relpath(target, root)
    return "/" if rel == "." else "/" + rel.replace(os.sep, "/")


@dataclass
class StagingConfig:
    """Where data comes from and where it is staged; the credentials never leave this process."""

    credentials: GlobusCredentials
    source_ep: str
    local_ep: str
    staging_dir: str
    local_ep_root: str = "/"
    timeout_s: float = 3600.0
    poll_interval_s: float = 2.0
    fault_timeout_s: float | None = 600.0
    #: transfers in flight at once
    parallel: int = 2
    #: the target is a compute endpoint's collection: no local mkdir/rmtree, cleanup by DeleteData
    remote: bool = False
    #: most bytes staged and not yet deleted (None: no cap)
    max_bytes: int | None = None
    #: most batches staged and not yet deleted (None: ``parallel``)
    max_staged: int | None = None

    #: the tasks.pools wrapper that stages each batch this way
    pool_kind: ClassVar[str] = "globus-staging"

    def __repr__(self) -> str:  # keep the credentials out of any log line
        return (f"StagingConfig(source_ep={self.source_ep!r}, local_ep={self.local_ep!r}, "
                f"staging_dir={self.staging_dir!r}, remote={self.remote!r})")

    def collection_path(self, path: str) -> str:
        """The path of a staged file on the staging collection (whose '/' is ``local_ep_root``)."""
        if not self.remote:
            return to_endpoint_path(path, self.local_ep_root)
        root, target = posixpath.normpath(self.local_ep_root), posixpath.normpath(path)
        if posixpath.commonpath([root, target]) != root:
            raise ValueError(f"{path} is not under the staging collection's root {self.local_ep_root}")
        rel = posixpath.relpath(target, root)
        return "/" if rel == "." else "/" + rel
