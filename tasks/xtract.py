"""Xtract stage: batches of groups through an executor, outcomes into the journal.

Groups already recorded with the same fingerprint are skipped (resume). Each batch
is one executor call, so Prefect and IPC overhead is paid per batch, not per file.
A worker that dies or hangs costs only its batch: the pool is restarted, the batch
split, and a group that fails again becomes an error record. The run always ends.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, BrokenExecutor, Future, wait
from dataclasses import dataclass, field
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from extractors.batch import failed_group, run_batch, write_json_atomic
from tasks.counters import XtractCounters
from tasks.executors import ExecutorSpec, ExtractionPool, open_pool
from tasks.group import iter_groups
from tasks.state import StateStore

Group = dict[str, Any]
GRACE_S = 30.0


@dataclass
class Batch:
    groups: list[Group]
    attempt: int = 0
    submitted: float = 0.0
    deadline: float = field(default=float("inf"))


def skip_done(groups: Iterable[Group], state: StateStore, run_id: str, counters: XtractCounters,
              *, chunk: int = 1000) -> Iterator[Group]:
    """Yield only groups that need work; mark the rest as skipped in this run."""
    buf: list[Group] = []

    def flush() -> Iterator[Group]:
        done = state.done_fingerprints([g["group_id"] for g in buf])
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
    """Drives batches through a pool with bounded in-flight work, retries and a watchdog."""

    def __init__(self, pool: ExtractionPool, state: StateStore, run_id: str, out_dir: str, *,
                 limit_s: float | None = 120.0, max_retries: int = 1,
                 counters: XtractCounters | None = None,
                 on_progress: Callable[[XtractCounters], None] | None = None,
                 progress_every_s: float = 2.0) -> None:
        self.pool = pool
        self.state = state
        self.run_id = run_id
        self.out_dir = out_dir
        self.groups_dir = os.path.join(out_dir, "groups")
        self.limit_s = limit_s
        self.max_retries = max_retries
        self.counters = counters or XtractCounters()
        self.on_progress = on_progress
        self.progress_every_s = progress_every_s
        self.in_flight: dict[Future[Any], Batch] = {}
        self.retry: deque[Batch] = deque()

    # -- submission -------------------------------------------------------
    def _submit(self, batch: Batch) -> None:
        out = self.out_dir if self.pool.shares_disk else None
        fut = self.pool.submit(run_batch, batch.groups, out_dir=out, limit_s=self.limit_s)
        now = time.monotonic()
        batch.submitted = now
        per_group = self.limit_s if self.limit_s else 3600.0
        batch.deadline = now + per_group * len(batch.groups) + GRACE_S
        self.in_flight[fut] = batch
        n = len(batch.groups)
        if batch.attempt == 0:
            self.counters.cumu_scheduled += n
        self.counters.fx_pending += n

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
        self.state.record(results, self.run_id)

    def _retry_or_fail(self, batch: Batch, reason: str) -> None:
        """Split a failed batch; a lone group past its retries becomes an error record."""
        self.counters.fx_pending -= len(batch.groups)
        if len(batch.groups) == 1 and batch.attempt >= self.max_retries:
            self._record([failed_group(batch.groups[0], reason)])
            return
        self.counters.retries += 1
        for g in batch.groups:
            self.retry.append(Batch([g], attempt=batch.attempt + 1))

    def _handle(self, fut: Future[Any]) -> bool:
        """Record one finished future; True when the pool broke and must restart."""
        batch = self.in_flight.pop(fut)
        try:
            results = fut.result()
        except BrokenExecutor as exc:
            self._retry_or_fail(batch, f"WorkerDied: the extraction worker process died ({exc})")
            return True
        except Exception as exc:  # noqa: BLE001 - any executor failure is retried, then recorded
            self._retry_or_fail(batch, f"{type(exc).__name__}: {exc}")
            return False
        self.counters.fx_pending -= len(batch.groups)
        self._record(results)
        return False

    def _expire_overdue(self) -> None:
        """A batch past its deadline is hung beyond signals: kill the pool, requeue the rest."""
        now = time.monotonic()
        overdue = [f for f, b in self.in_flight.items() if b.deadline < now]
        if not overdue:
            return
        for fut in list(self.in_flight):
            batch = self.in_flight.pop(fut)
            if fut in overdue:
                self._retry_or_fail(batch, f"TimeoutError: no result within {batch.deadline - batch.submitted:.0f}s")
            elif not fut.done() or fut.exception() is not None:
                self.counters.fx_pending -= len(batch.groups)
                self.retry.appendleft(batch)
            else:
                self.counters.fx_pending -= len(batch.groups)
                self._record(fut.result())
        self.counters.pool_restarts += 1
        self.pool.restart()

    # -- main loop --------------------------------------------------------
    def run(self, batches: Iterator[Batch], *, max_in_flight: int) -> XtractCounters:
        exhausted = False
        last_progress = 0.0
        while True:
            while len(self.in_flight) < max_in_flight:
                if self.retry:
                    self._submit(self.retry.popleft())
                    continue
                if exhausted:
                    break
                nxt = next(batches, None)
                if nxt is None:
                    exhausted = True
                    break
                self._submit(nxt)
            if not self.in_flight:
                break
            done, _ = wait(list(self.in_flight), timeout=1.0, return_when=FIRST_COMPLETED)
            broken = False
            for fut in done:
                broken |= self._handle(fut)
            if broken:
                for fut in list(self.in_flight):  # every in-flight future of a broken pool fails
                    batch = self.in_flight.pop(fut)
                    self.counters.fx_pending -= len(batch.groups)
                    if fut.done() and fut.exception() is None:
                        self._record(fut.result())
                    else:
                        self.retry.append(batch)
                self.counters.pool_restarts += 1
                self.pool.restart()
            self._expire_overdue()
            now = time.monotonic()
            if self.on_progress and now - last_progress >= self.progress_every_s:
                last_progress = now
                self.on_progress(self.counters)
        if self.on_progress:
            self.on_progress(self.counters)
        return self.counters


@task(name="xtract", cache_policy=NO_CACHE, task_run_name="xtract-{endpoint_name}")
def xtract(groups_spool: str, out_dir: str, run_id: str, spec: ExecutorSpec, *, total_groups: int,
           endpoint_name: str = "endpoint", batch_size: int | None = None,
           limit_s: float | None = 120.0, max_retries: int = 1) -> dict[str, Any]:
    """Extract every group not already done; returns the counters."""
    from tasks.status import ProgressReporter, publish_counters

    logger = get_run_logger()
    os.makedirs(os.path.join(out_dir, "groups"), exist_ok=True)
    workers = spec.resolved_workers()
    size = batch_size or max(1, min(200, total_groups // (workers * 4) or 1))
    counters = XtractCounters(groups_total=total_groups)
    reporter = ProgressReporter(endpoint_name, total_groups)
    state = StateStore(os.path.join(out_dir, ".xtract"))
    pool = open_pool(spec)
    try:
        run = ExtractionRun(pool, state, run_id, out_dir, limit_s=limit_s, max_retries=max_retries,
                            counters=counters, on_progress=reporter)
        todo = skip_done(iter_groups(groups_spool), state, run_id, counters)
        run.run(make_batches(todo, max_groups=size), max_in_flight=workers * 2)
    finally:
        pool.close()
        state.close()
    publish_counters(endpoint_name, counters)
    logger.info("xtract %s: %d groups extracted, %d failed, %d skipped (batch size %d, %d workers)",
                endpoint_name, counters.fx_success, counters.fx_failed, counters.groups_skipped, size, workers)
    return counters.as_dict()
