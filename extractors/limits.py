"""Resource limits applied inside an extraction worker process.

Runs in the worker (process-pool initializer), so a runaway extractor hits its
own limit and cannot take the flow process down with it: RLIMIT_AS turns
unbounded allocation into a MemoryError, no core files are dumped by a crashing C
library, and a SIGALRM timer interrupts an extractor that runs past its time.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class GroupTimeout(Exception):
    """A group ran past its time limit."""


def init_worker(memory_limit_mb: int | None = None, parent: dict[str, Any] | None = None) -> None:
    """Process-pool initializer: cap the address space, no core dumps, ignore Ctrl-C.

    ``parent`` (umask, environ, file-size limit) is what the flow process had when the pool
    started: a worker forked from a fork server would otherwise keep the server's, from when the
    server started, where a spawned worker inherits the flow process's own.
    """
    import os
    import resource

    if parent is not None:
        os.umask(parent["umask"])
        if dict(os.environ) != parent["environ"]:
            os.environ.clear()
            os.environ.update(parent["environ"])
        try:
            resource.setrlimit(resource.RLIMIT_FSIZE, parent["fsize"])
        except (ValueError, OSError):  # above our hard limit: keep the stricter one
            pass
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # a file-size limit must fail a write with EFBIG, not kill the worker
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    try:
        resource.setrlimit(resource.RLIMIT_CORE, (0, resource.getrlimit(resource.RLIMIT_CORE)[1]))
    except (ValueError, OSError):
        pass
    if memory_limit_mb:
        limit = memory_limit_mb * 1024 * 1024
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


class Deadline:
    """A group's time budget.

    The timer only raises while an extractor runs (inside ``guard``); elsewhere it
    just marks the deadline expired, so the bookkeeping around extractors is
    never cut in half and every file gets exactly one outcome.
    """

    def __init__(self, seconds: float | None) -> None:
        self.seconds = seconds
        self.end = time.monotonic() + seconds if seconds else float("inf")
        self._fired = False
        self._armed = False
        #: True while ``time_limit`` has a SIGALRM timer running for this deadline
        self._timer = False

    def restart(self) -> None:
        """A fresh budget of ``seconds`` from now: time limits apply per file, so each file gets its own."""
        if not self.seconds:
            return
        self._fired = False
        self.end = time.monotonic() + self.seconds
        if self._timer:
            signal.setitimer(signal.ITIMER_REAL, self.seconds)

    @property
    def expired(self) -> bool:
        return self._fired or time.monotonic() >= self.end

    def _on_alarm(self, signum: int, frame: object) -> None:
        self._fired = True
        if self._armed:
            self._armed = False
            raise GroupTimeout()

    @contextmanager
    def guard(self) -> Iterator[None]:
        """Run extractor code; raises GroupTimeout when the deadline passes (or has passed)."""
        if self.expired:
            raise GroupTimeout()
        self._armed = True
        try:
            yield
        finally:
            self._armed = False


@contextmanager
def time_limit(seconds: float | None) -> Iterator[Deadline]:
    """A Deadline whose guard raises GroupTimeout after ``seconds`` of wall time.

    Signals only work in the main thread; elsewhere (Dask, Globus Compute threads)
    the deadline is checked between files and the executor's own deadline guards
    against one file that never returns.
    """
    deadline = Deadline(seconds)
    if not seconds or threading.current_thread() is not threading.main_thread():
        yield deadline
        return
    previous = signal.signal(signal.SIGALRM, deadline._on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    deadline._timer = True
    try:
        yield deadline
    finally:
        deadline._timer = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def memory_limit_mb() -> int | None:
    """The worker's address-space cap in MB (set by ``init_worker``), None when there is none."""
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    return None if soft == resource.RLIM_INFINITY else soft // (1024 * 1024)


def memory_cap_message(exc: BaseException) -> str | None:
    """"exceeded the worker memory limit of N MB (...)" when ``exc`` is the memory cap striking, else None.

    Under RLIMIT_AS an allocation fails rather than the process being killed: Python raises
    MemoryError, C libraries report their own "out of memory" (pandas: "C error: out of
    memory"). Both mean the file needed more than the cap, which is what the user must read.
    """
    limit = memory_limit_mb()
    if limit is None:
        return None
    text = str(exc)
    if not isinstance(exc, MemoryError) and "out of memory" not in text.lower():
        return None
    return f"exceeded the worker memory limit of {limit} MB ({type(exc).__name__}: {text[:200]})"
