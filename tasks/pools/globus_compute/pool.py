"""Globus Compute as an ExtractionPool: batches of groups run on a compute endpoint.

``ExtractionRun`` submits ``run_batch``; this pool sends the registered remote entry
function (``tasks.pools.globus_compute.entry.xtract_remote_batch``, which calls ``run_batch``
remotely) instead, so the run's retries, watchdog and counters work unchanged.
One submitted batch may become several tasks: groups are split by container
family (each task's ``user_endpoint_config`` names its image) and halved until
each payload fits the 10 MB limit, and a task whose result would exceed the limit
returns early and names the groups left, which are submitted again. The parts are
gathered into one future, so the caller sees one result list per batch.

Workers do not see the flow's disk (``shares_disk = False``): documents come back
in the results and the flow writes them. A document too large for a result is
written on the endpoint and comes back as a pointer; with ``PoolSpec.compute.remote_results``
(``tasks.pools.globus_compute.remote_results.RemoteResults``) the pool transfers it home, in its
own threads, before the batch's future completes.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from functools import partial
from typing import Any

from extractors.batch import failed_group, run_batch
from tasks.pools.base import ComputeOptions, ExtractionPool, PoolSpec
from tasks.pools.globus_compute.containers import family_of, user_endpoint_config
from tasks.pools.globus_compute.registration import ComputeConfigError, ensure_registered, make_backend
from tasks.pools.globus_compute.remote_results import RemoteResults
from tasks.pools.globus_compute.sizing import RESULT_BUDGET, fit_payload, make_serializer
from xtract_blocks.compute import GlobusComputeSettings
from xtract_blocks.errors import PayloadTooLarge, TaskLost

__all__ = ["ComputeConfigError", "ComputePool", "TaskLost"]

log = logging.getLogger(__name__)


class _Job:
    """The parts of one submitted batch, gathered into one outer future."""

    def __init__(self) -> None:
        self.outer: Future[list[dict[str, Any]]] = Future()
        self.outer.set_running_or_notify_cancel()
        self.pending = 1  # the submitter holds one until every first-round part is sent
        self.results: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def add(self, results: list[dict[str, Any]]) -> None:
        with self.lock:
            self.results.extend(results)

    def fail(self, exc: BaseException) -> None:
        with self.lock:
            if not self.outer.done():
                self.outer.set_exception(exc)

    def part_done(self) -> bool:
        with self.lock:
            self.pending -= 1
            if self.pending == 0 and not self.outer.done():
                self.outer.set_result(self.results)
            return self.outer.done()


class ComputePool(ExtractionPool):
    """Submits batches to a Globus Compute endpoint (or the local stand-in) by registered function id."""

    shares_disk = False

    def __init__(self, spec: PoolSpec) -> None:
        opts = spec.compute or ComputeOptions()
        self.settings: GlobusComputeSettings = opts.settings or GlobusComputeSettings()
        self.backend = make_backend(opts.endpoint_id, self.settings, opts.credentials)
        self.function_id: str = opts.function_id or ensure_registered(
            self.backend, self.settings.registry_block)["function_id"]
        self.serializer = make_serializer()
        remote: RemoteResults | None = opts.remote_results
        self.remote = remote.for_pool() if remote is not None else None
        self._fetchers = ThreadPoolExecutor(max_workers=2, thread_name_prefix="compute-fetch") if remote else None
        self._lock = threading.Lock()
        self._jobs: set[_Job] = set()
        super().__init__(spec)

    def _start(self) -> Executor:
        return self.backend.open_executor(self.spec.resolved_workers(), self.spec.memory_limit_mb)

    # -- submission ------------------------------------------------------------
    def _parts(self, groups: list[dict[str, Any]]) -> Iterator[tuple[str, list[dict[str, Any]]]]:
        if self.settings.container_type == "none":
            yield "all", groups
            return
        by_family: dict[str, list[dict[str, Any]]] = {}
        for g in groups:
            by_family.setdefault(family_of(g), []).append(g)
        yield from by_family.items()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        """Run ``run_batch(groups, limit_s=...)`` remotely; ``out_dir`` is ignored (no shared disk)."""
        if fn is not run_batch:
            raise TypeError(f"ComputePool runs extractors.batch.run_batch only, not {getattr(fn, '__name__', fn)}")
        groups: list[dict[str, Any]] = args[0] if args else kwargs["groups"]
        task_kwargs = {"limit_s": kwargs.get("limit_s"),
                       "max_result_bytes": min(RESULT_BUDGET, self.settings.payload_limit_bytes * 9 // 10)}
        if self.remote is not None:
            task_kwargs["remote_mdata_dir"] = self.remote.worker_dir()
        job = _Job()
        with self._lock:
            self._jobs.add(job)
        try:
            for family, part in self._parts(groups):
                for chunk in fit_payload(self.serializer, part, task_kwargs, limit=self.settings.payload_limit_bytes):
                    if isinstance(chunk, PayloadTooLarge):
                        bad = next(g for g in part if g["group_id"] == chunk.group_id)
                        job.add([failed_group(bad, str(chunk))])
                    else:
                        self._send(job, family, chunk, task_kwargs)
        except Exception as exc:  # noqa: BLE001 - the batch's future carries it; the run retries
            job.fail(exc)
        self._finish_part(job)
        return job.outer

    def _send(self, job: _Job, family: str, chunk: list[dict[str, Any]], task_kwargs: dict[str, Any]) -> None:
        with job.lock:
            job.pending += 1
        with self._lock:
            ex: Any = self.executor
            ex.user_endpoint_config = user_endpoint_config(family, self.settings)
            fut = ex.submit_to_registered_function(self.function_id, args=(chunk,), kwargs=task_kwargs)
        fut.add_done_callback(partial(self._collect, job, family, chunk, task_kwargs))

    def _collect(self, job: _Job, family: str, chunk: list[dict[str, Any]], task_kwargs: dict[str, Any],
                 fut: Future[Any]) -> None:
        if job.outer.done():
            return
        try:
            res = fut.result()
            remaining = set(res["remaining"])
            if remaining:  # the result limit cut this task short: send the rest as a new part
                self._send(job, family, [g for g in chunk if g["group_id"] in remaining], task_kwargs)
            if self._fetchers is not None and any(r.get("doc_ref") for r in res["results"]):
                with job.lock:
                    job.pending += 1  # released by _fetch: this thread must not wait for a transfer
                self._fetchers.submit(self._fetch, job, res["results"])
            else:
                job.add(res["results"])
        except BaseException as exc:  # noqa: BLE001 - a lost or failed task fails its batch; the run retries
            job.fail(exc)
        self._finish_part(job)

    def _fetch(self, job: _Job, results: list[dict[str, Any]]) -> None:
        """Bring oversized documents home by transfer; a failed transfer fails the batch (then retried)."""
        try:
            assert self.remote is not None
            job.add(self.remote.fetch(results))
        except BaseException as exc:  # noqa: BLE001 - carried by the batch's future
            job.fail(exc)
        self._finish_part(job)

    def _finish_part(self, job: _Job) -> None:
        if job.part_done():
            with self._lock:
                self._jobs.discard(job)

    # -- lifecycle ---------------------------------------------------------------
    def kill(self) -> None:
        """Abandon every open batch (their futures fail with TaskLost) and stop the executor."""
        with self._lock:
            jobs, self._jobs = list(self._jobs), set()
        for job in jobs:
            job.fail(TaskLost("TaskLost: the compute executor was restarted before this task returned"))
        killer = getattr(self.executor, "kill", None)
        if killer is not None:
            killer()
        self.executor.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)
        if self._fetchers is not None:
            self._fetchers.shutdown(wait=True, cancel_futures=True)
        if self.remote is not None:
            try:
                self.remote.cleanup()
            except Exception as exc:  # noqa: BLE001 - the metadata is home; a leftover empty directory is not fatal
                log.warning("could not remove the remote metadata directory %s: %s", self.remote.remote_path,
                            type(exc).__name__)
