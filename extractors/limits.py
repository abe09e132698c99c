"""Resource limits applied inside an extraction worker process.

Runs in the worker (process-pool initializer), so a runaway extractor hits its
own limit and cannot take the flow process down with it.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class GroupTimeout(Exception):
    """A group ran past its time limit."""


def init_worker(memory_limit_mb: int | None = None) -> None:
    """Process-pool initializer: cap the address space and ignore Ctrl-C in workers."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if memory_limit_mb:
        import resource

        limit = memory_limit_mb * 1024 * 1024
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def _raise_timeout(signum: int, frame: object) -> None:
    raise GroupTimeout()


@contextmanager
def time_limit(seconds: float | None) -> Iterator[None]:
    """Raise GroupTimeout after ``seconds`` of wall time (main thread only).

    Outside the main thread (Dask, Globus Compute threads) signals cannot be
    used; there the executor's own deadline is the guard.
    """
    if not seconds or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGALRM, _raise_timeout)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
