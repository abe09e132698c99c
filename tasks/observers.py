"""An in-process observer hook: stages report progress, whoever listens renders it.

The flow runs in the caller's process (``xtract run``, a notebook, a worker), so a
terminal display does not need to parse logs or poll the API: it subscribes here
and the stages call :func:`notify` from their existing progress callbacks. With no
subscriber, ``notify`` costs one list check. An observer that raises is dropped
from that one call and never fails the run; observers are called on the stage's
thread, so they must be quick (record the numbers, render elsewhere).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

Phase = Literal["start", "progress", "end"]


@dataclass(frozen=True)
class StageEvent:
    """One report from a stage of one endpoint's run."""

    stage: str
    endpoint: str
    phase: Phase
    data: dict[str, Any] = field(default_factory=dict)
    at: float = field(default_factory=time.monotonic)


Observer = Callable[[StageEvent], None]

_lock = threading.Lock()
_observers: list[Observer] = []


def subscribe(observer: Observer) -> Callable[[], None]:
    """Start sending events to ``observer``; returns the function that stops it."""
    with _lock:
        _observers.append(observer)

    def unsubscribe() -> None:
        with _lock:
            if observer in _observers:
                _observers.remove(observer)

    return unsubscribe


@contextmanager
def observing(observer: Observer) -> Iterator[Observer]:
    """``with observing(fn):`` subscribes ``fn`` for the block's duration."""
    stop = subscribe(observer)
    try:
        yield observer
    finally:
        stop()


def notify(stage: str, endpoint: str, phase: Phase, **data: Any) -> None:
    """Send one event to every observer; never raises."""
    if not _observers:
        return
    with _lock:
        targets = list(_observers)
    event = StageEvent(stage, endpoint, phase, data)
    for observer in targets:
        try:
            observer(event)
        except Exception:  # noqa: BLE001 - a broken display must not break an extraction
            pass


def crawl_fields(status: Any) -> dict[str, Any]:
    """The numbers of a CrawlStatus a progress display shows (duck-typed: any crawler's status)."""
    return {
        "files": status.files, "bytes": status.bytes, "dirs": status.dirs,
        "dirs_failed": status.dirs_failed, "dirs_pending": getattr(status, "dirs_pending", None),
    }


def crawl_observer(endpoint: str) -> Callable[[Any], None]:
    """An ``on_batch`` callback for ``crawl_to_spool`` that forwards each batch's totals."""

    def on_batch(status: Any) -> None:
        notify("crawl", endpoint, "progress", **crawl_fields(status))

    return on_batch
