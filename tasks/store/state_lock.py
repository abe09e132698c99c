"""The state lock: one run at a time writes a metadata directory.

Endpoints sharing one metadata directory keep their spools apart (``EndpointState``),
but the journal, ``index.parquet`` and ``groups/`` are one per directory: two runs
writing them at once would leave a mixed index. The lock is an ``flock`` on
``OUT/.xtract/lock``, so the kernel releases it when its holder dies (a stale lock of a
dead process is simply taken); the file names the holder (pid, host, flow run, since)
so a run that cannot get it says which run has it. ``flock`` is per host: on a
metadata directory shared over NFS by several hosts it does not exclude the other hosts.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from xtract_blocks.errors import MetadataDirError


class StateLocked(MetadataDirError):
    """Another run holds the metadata directory's state lock."""


def holder_of(lock_path: str) -> dict[str, Any]:
    """What the lock file says about its holder ({} when unreadable or empty)."""
    try:
        with open(lock_path, encoding="utf-8") as fh:
            value = json.loads(fh.read() or "{}")
        return value if isinstance(value, dict) else {}
    except (OSError, ValueError):
        return {}


def describe(holder: dict[str, Any]) -> str:
    run = holder.get("flow_run") or "a run outside Prefect"
    return (f"flow run {run} (pid {holder.get('pid', '?')} on {holder.get('host', '?')}, "
            f"since {holder.get('since', '?')})")


@contextmanager
def state_lock(lock_path: str, *, flow_run: str | None, timeout_s: float = 600.0,
               poll_s: float = 0.2) -> Iterator[dict[str, Any]]:
    """Hold the lock for the block; wait up to ``timeout_s`` for it, then raise StateLocked naming the holder."""
    os.makedirs(os.path.dirname(lock_path), exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        deadline = time.monotonic() + max(0.0, timeout_s)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise StateLocked(f"metadata directory {os.path.dirname(os.path.dirname(lock_path))} is in use "
                                      f"by {describe(holder_of(lock_path))}; waited {timeout_s:g}s") from None
                time.sleep(poll_s)
        me = {"pid": os.getpid(), "host": socket.gethostname(), "flow_run": flow_run,
              "since": datetime.now(UTC).isoformat(timespec="seconds")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(me).encode(), 0)
        try:
            yield me
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
