"""Xtract stage: batches of groups through an executor, outcomes into the journal.

Groups already recorded with the same fingerprint are skipped (resume). Each batch
is one executor call, so Prefect and IPC overhead is paid per batch, not per file.
A worker that dies or hangs costs only its batch: the pool is restarted, the batch
split, and a group that fails again becomes an error record. The run always ends.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, BrokenExecutor, Future, wait
from dataclasses import dataclass, field
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from extractors.batch import (
    DISK_FULL_ERRNOS,
    MetadataWriteError,
    failed_group,
    remove_partial_files,
    run_batch,
    write_json_atomic,
)
from tasks.counters import XtractCounters
from tasks.group import iter_groups
from tasks.pools.base import ExtractionPool, PoolSpec
from tasks.pools.plan import open_pool
from tasks.status import ProgressReporter
from tasks.store.journal import StateStore
from tasks.store.layout import MetadataDir
from tasks.store.search import SyncWhileRunning

Group = dict[str, Any]
GRACE_S = 30.0


@dataclass
class Batch:
    groups: list[Group]
    #: failures charged to these groups so far
    attempt: int = 0
    #: False for retries, so cumu_scheduled counts each group once
    fresh: bool = True
    submitted: float = 0.0
    started: float | None = None
    deadline: float = field(default=float("inf"))


def skip_done(groups: Iterable[Group], state: StateStore, run_id: str, counters: XtractCounters,
              *, chunk: int = 1000, retry_failed: bool = True) -> Iterator[Group]:
    """Yield only groups that need work; mark the rest as skipped in this run.

    A group needs work when it is new, changed, or (``retry_failed``, the default) failed
    before: a failure is never "done", so a rerun with a larger time limit or a fixed
    extractor gets its chance.
    """
    buf: list[Group] = []

    def flush() -> Iterator[Group]:
        done = state.done_fingerprints([g["group_id"] for g in buf], retry_failed=retry_failed)
        skipped = [g for g in buf if done.get(g["group_id"]) == g["fingerprint"]]
        if skipped:
            state.mark_skipped([g["group_id"] for g in skipped], run_id)
            counters.groups_skipped += len(skipped)
            counters.files_skipped += sum(len(g["files"]) for g in skipped)
        for g in buf:
            if done.get(g["group_id"]) != g["fingerprint"]:
                counters.cumu_pulled += 1
                yield g
        buf.clear()

    for g in groups:
        counters.cumu_orch_enter += 1
        buf.append(g)
        if len(buf) >= chunk:
            yield from flush()
    if buf:
        yield from flush()


def make_batches(groups: Iterable[Group], *, max_groups: int, max_files: int = 5000,
                 max_bytes: int = 512 * 1024**2) -> Iterator[Batch]:
    """Cut groups into batches bounded by group count, file count and bytes."""
    cur: list[Group] = []
    files = size = 0
    for g in groups:
        n = len(g["files"])
        b = sum(f["size"] for f in g["files"])
        if cur and (len(cur) >= max_groups or files + n > max_files or size + b > max_bytes):
            yield Batch(cur)
            cur, files, size = [], 0, 0
        cur.append(g)
        files += n
        size += b
    if cur:
        yield Batch(cur)


class ExtractionRun:
    """Drives batches through a pool with bounded in-flight work, retries and a watchdog.

    Failure attribution is what keeps innocent groups from becoming error records:
    - a batch whose future fails (or passes its deadline) is to blame: each of its
      groups is charged one failure and retried alone;
    - when a process pool breaks (a worker was SIGKILLed, segfaulted, or the OOM
      killer struck), every in-flight future fails and nobody knows whose group did
      it, so nobody is charged: all those groups become *suspects*, run one at a
      time with nothing else in flight, so the next break names its culprit;
    - a group charged more than ``max_retries`` times becomes an error record.
    A full metadata disk is not retried: the run stops with ``MetadataWriteError``.
    """

    def __init__(self, pool: ExtractionPool, state: StateStore, run_id: str, out_dir: str, *,
                 limit_s: float | None = 120.0, max_retries: int = 1,
                 counters: XtractCounters | None = None,
                 on_progress: Callable[[XtractCounters], None] | None = None,
                 progress_every_s: float = 2.0, grace_s: float = GRACE_S, poll_s: float = 1.0,
                 workers_write: bool = True,
                 on_record: Callable[[list[dict[str, Any]], str], None] | None = None) -> None:
        self.pool = pool
        #: False: workers return documents and this process writes them (it has a core to spare)
        self.workers_write = workers_write
        self.state = state
        self.run_id = run_id
        self.out_dir = out_dir
        self.groups_dir = MetadataDir.of(out_dir).groups
        self.limit_s = limit_s
        self.max_retries = max_retries
        self.counters = counters or XtractCounters()
        self.on_progress = on_progress
        #: told of every batch of results once the journal holds it (the search index follows it)
        self.on_record = on_record
        self.progress_every_s = progress_every_s
        self.grace_s = grace_s
        self.poll_s = poll_s
        self.in_flight: dict[Future[Any], Batch] = {}
        self.retry: deque[Batch] = deque()
        self.suspects: deque[Batch] = deque()
        self._exhausted = False
        self._broken: BaseException | None = None  # set when submit found the pool broken
        self._submit_failures = 0

    # -- submission -------------------------------------------------------
    def _budget(self, batch: Batch) -> float:
        per_file = self.limit_s if self.limit_s else 3600.0  # the worker's limit is per file
        return per_file * sum(len(g["files"]) for g in batch.groups) + self.grace_s

    def _submit(self, batch: Batch, queue: deque[Batch] | None = None) -> bool:
        """Hand ``batch`` to the pool; False (batch put back on ``queue``) when the pool is already broken.

        A process pool breaks asynchronously: between a worker's death and our
        noticing, ``submit`` raises BrokenProcessPool (or OSError from a half-closed
        queue). That is the same event as a failed future, not this batch's fault.
        """
        out = self.out_dir if self.pool.shares_disk and self.workers_write else None
        try:
            fut = self.pool.submit(run_batch, batch.groups, out_dir=out, limit_s=self.limit_s)
        except (BrokenExecutor, OSError, RuntimeError) as exc:
            self._submit_failures += 1
            if self._submit_failures > 3:  # a fresh pool refuses work too: not a dead worker
                raise
            (queue if queue is not None else self.retry).appendleft(batch)
            self._broken = exc
            return False
        self._submit_failures = 0
        now = time.monotonic()
        batch.submitted = now
        batch.started = None
        # until the executor reports the batch running, allow for one batch of queueing ahead of it
        batch.deadline = now + 2 * self._budget(batch)
        self.in_flight[fut] = batch
        n = len(batch.groups)
        if batch.fresh:
            self.counters.cumu_scheduled += n
            batch.fresh = False
        self.counters.fx_pending += n
        return True

    def _fill(self, batches: Iterator[Batch], max_in_flight: int) -> None:
        while len(self.in_flight) < max_in_flight and self._broken is None:
            if self.suspects:  # quarantine: a suspect only ever runs alone
                if not self.in_flight:
                    self._submit(self.suspects.popleft(), self.suspects)
                return
            if self.retry:
                self._submit(self.retry.popleft(), self.retry)
                continue
            if self._exhausted:
                return
            nxt = next(batches, None)
            if nxt is None:
                self._exhausted = True
                return
            self._submit(nxt)

    # -- completion -------------------------------------------------------
    def _record(self, results: list[dict[str, Any]]) -> None:
        for res in results:
            if res.get("doc") is not None:
                write_json_atomic(os.path.join(self.groups_dir, f"{res['group_id']}.json"), res["doc"])
            statuses = [f["status"] for f in res["files"]]
            if "error" in statuses:
                self.counters.fx_failed += 1
            else:
                self.counters.fx_success += 1
            if statuses and all(s == "unknown" for s in statuses):
                self.counters.flagged_unknown += 1
            self.counters.files_ok += statuses.count("ok")
            self.counters.files_error += statuses.count("error")
            self.counters.files_unknown += statuses.count("unknown")
        try:
            self.state.record(results, self.run_id)
        except sqlite3.OperationalError as exc:
            if "full" in str(exc):
                raise MetadataWriteError(errno.ENOSPC, f"{os.strerror(errno.ENOSPC)}: cannot write the journal ({exc})",
                                         self.state.path) from exc
            raise
        if self.on_record is not None:
            self.on_record(results, self.run_id)

    def _take(self, fut: Future[Any]) -> Batch:
        batch = self.in_flight.pop(fut)
        self.counters.fx_pending -= len(batch.groups)
        return batch

    def _charge(self, batch: Batch, reason: str, *, isolate: bool = False) -> None:
        """A failure attributable to ``batch``: retry its groups alone, or record a lone group as failed."""
        attempt = batch.attempt + 1
        if len(batch.groups) == 1 and attempt > self.max_retries:
            self._record([failed_group(batch.groups[0], reason)])
            return
        self.counters.retries += 1
        queue = self.suspects if isolate else self.retry
        queue.extend(Batch([g], attempt=attempt, fresh=False) for g in batch.groups)

    def _handle(self, fut: Future[Any]) -> None:
        batch = self._take(fut)
        try:
            results = fut.result()
        except OSError as exc:
            if isinstance(exc, MetadataWriteError) or exc.errno in DISK_FULL_ERRNOS:
                raise MetadataWriteError(exc.errno or errno.ENOSPC, exc.strerror or str(exc), exc.filename) from exc
            self._charge(batch, f"{type(exc).__name__}: {exc}")
            return
        except Exception as exc:  # noqa: BLE001 - any executor failure is retried, then recorded
            self._charge(batch, f"{type(exc).__name__}: {exc}")
            return
        self._record(results)

    def _on_broken(self, exc: BaseException) -> None:
        """The pool died: keep what finished, quarantine the rest, restart the pool."""
        lone = len(self.in_flight) == 1
        reason = f"WorkerDied: the extraction worker process died ({exc})"
        for fut in list(self.in_flight):
            batch = self._take(fut)
            if fut.done() and not fut.cancelled() and fut.exception() is None:
                self._record(fut.result())
            elif lone:  # nothing else ran: this batch broke the pool
                self._charge(batch, reason, isolate=True)
            else:
                self.counters.retries += 1
                self.suspects.extend(Batch([g], attempt=batch.attempt, fresh=False) for g in batch.groups)
        self.counters.pool_restarts += 1
        self.pool.restart()
        self._broken = None

    def _watchdog(self) -> None:
        """Start deadlines when batches start running; kill the pool when one is overdue."""
        now = time.monotonic()
        overdue = []
        for fut, batch in self.in_flight.items():
            if batch.started is None and fut.running():
                batch.started = now
                batch.deadline = min(batch.deadline, now + self._budget(batch))
            if batch.deadline < now and not fut.done():
                overdue.append(fut)
        if not overdue:
            return
        for fut in list(self.in_flight):
            batch = self._take(fut)
            if fut in overdue:
                self._charge(batch, f"TimeoutError: no result within {now - batch.submitted:.0f}s (worker hung)")
            elif fut.done() and not fut.cancelled() and fut.exception() is None:
                self._record(fut.result())
            else:  # collateral of the restart: run again unchanged
                self.retry.appendleft(batch)
        self.counters.pool_restarts += 1
        self.pool.restart()
        self._broken = None

    # -- main loop --------------------------------------------------------
    def run(self, batches: Iterator[Batch], *, max_in_flight: int) -> XtractCounters:
        last_progress = 0.0
        try:
            while True:
                self._fill(batches, max_in_flight)
                if not self.in_flight:
                    if self._broken is None:
                        break
                    self._on_broken(self._broken)  # broke with nothing in flight: just restart
                    continue
                done, _ = wait(list(self.in_flight), timeout=self.poll_s, return_when=FIRST_COMPLETED)
                broken: BaseException | None = None
                for fut in done:
                    exc = None if fut.cancelled() else fut.exception()
                    if isinstance(exc, BrokenExecutor):
                        broken = exc
                    else:
                        self._handle(fut)
                broken = broken or self._broken
                if broken is not None:
                    self._on_broken(broken)
                self._watchdog()
                self.pool.check()
                now = time.monotonic()
                if self.on_progress and now - last_progress >= self.progress_every_s:
                    last_progress = now
                    self.on_progress(self.counters)
        except BaseException:
            self.pool.kill()  # stop workers now: nothing they finish could be recorded
            if self.pool.shares_disk:  # the killed workers may have been mid-write
                remove_partial_files(self.groups_dir)
            raise
        if self.on_progress:
            self.on_progress(self.counters)
        return self.counters


@task(name="xtract", cache_policy=NO_CACHE, task_run_name="xtract-{endpoint_name}")
def xtract(groups_spool: str, out_dir: str, run_id: str, spec: PoolSpec, *, total_groups: int,
           endpoint_name: str = "endpoint", batch_size: int | None = None,
           limit_s: float | None = 120.0, max_retries: int = 1, retry_failed: bool = True,
           follow_symlinks: bool = False) -> dict[str, Any]:
    """Extract every group not already done (failed groups again, unless ``retry_failed`` is off); returns counters."""
    logger = get_run_logger()
    layout = MetadataDir.of(out_dir)
    os.makedirs(layout.groups, exist_ok=True)
    remove_partial_files(layout.groups)  # left by a killed run; no writer is running now
    counters = XtractCounters(groups_total=total_groups)
    reporter = ProgressReporter(endpoint_name, total_groups)
    sync_search = SyncWhileRunning(out_dir)  # most indexing overlaps extraction

    def on_progress(c: XtractCounters) -> None:
        reporter(c)
        sync_search()

    state = StateStore(layout.state, endpoint_name)
    pool = open_pool(spec)
    workers = pool.capacity()  # an existing cluster has as many slots as it has, not as many as this machine
    # >= 8 batches per worker: the last batches finish close together (the tail costs at most ~1/8 of a
    # worker's share), while 200 groups per call keeps Prefect/IPC cost per batch, not per file.
    size = batch_size or max(1, min(200, total_groups // (workers * 8) or 1))
    try:
        # Creating one file per group is ~10% of a worker's time (measured, bench/RESULTS.md): with a
        # core to spare, the flow process writes the documents while the workers extract the next batch.
        spare_core = spec.kind == "local" and workers < (os.cpu_count() or 1)
        run = ExtractionRun(pool, state, run_id, out_dir, limit_s=limit_s, max_retries=max_retries,
                            counters=counters, on_progress=on_progress, workers_write=not spare_core,
                            on_record=sync_search.note)
        groups = iter_groups(groups_spool)
        if follow_symlinks:  # workers open files with O_NOFOLLOW unless told the run follows links
            groups = ({**g, "follow_symlinks": True} for g in groups)
        todo = skip_done(groups, state, run_id, counters, retry_failed=retry_failed)
        run.run(make_batches(todo, max_groups=size), max_in_flight=workers * 2)
    finally:
        pool.close()
        state.close()
    reporter.finish(counters)  # best-effort, bounded: a vanished API costs this task seconds, not the metadata
    logger.info("xtract %s: %d groups extracted, %d failed, %d skipped (batch size %d, %d workers)",
                endpoint_name, counters.fx_success, counters.fx_failed, counters.groups_skipped, size, workers)
    return counters.as_dict()
