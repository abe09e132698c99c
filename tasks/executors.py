"""Where extraction runs: any ``concurrent.futures.Executor``.

The default is a local process pool (workers with a memory cap, forked from a
server process that imported the extractor stack once). Other engines (Dask,
Globus Compute) plug in through ``EXECUTORS`` with the same interface, so
scaling out never needs a home-made scheduler.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing.context import BaseContext
from typing import Any

from extractors.batch import current_umask
from extractors.limits import init_worker

#: Imported once by the fork server: what nearly every run needs (tables). Importing it costs a
#: spawned worker ~1 s each time it starts (and again after every crash restart); a fork costs ms.
#: Format libraries (h5py, netCDF4, PIL) are left to the first worker that meets such a file:
#: preloading them costs ~0.5 s of CPU that most runs would not use.
WORKER_PRELOAD = ["extractors.batch", "extractors.builtins", "pandas", "numpy"]


def worker_context() -> BaseContext:
    """Where local workers come from: a fork server (a clean single-threaded process, so forking is
    safe although the flow process runs threads), or spawn where the platform has none."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(WORKER_PRELOAD)  # takes effect when the server starts; idempotent
    return ctx


def parent_context() -> dict[str, Any]:
    """What workers must share with this process now (umask, environment, file-size limit), handed to
    ``init_worker``: forked from the fork server, they would otherwise keep the server's."""
    import resource

    return {"umask": current_umask(), "environ": dict(os.environ),
            "fsize": resource.getrlimit(resource.RLIMIT_FSIZE)}


def start_worker_server() -> None:
    """Start the fork server now, so its imports overlap with the caller's own start-up (Prefect's)."""
    if worker_context().get_start_method() == "forkserver":
        from multiprocessing import forkserver

        forkserver.ensure_running()


@dataclass
class ExecutorSpec:
    """What the xtract stage needs to know to start (and restart) its executor."""

    kind: str = "local"
    workers: int | None = None
    memory_limit_mb: int | None = 4096
    address: str | None = None
    options: dict[str, Any] | None = None

    def resolved_workers(self) -> int:
        return max(1, self.workers or (os.cpu_count() or 1))


class ExtractionPool:
    """An executor that can be killed and restarted when a worker dies or hangs."""

    #: Whether workers see the flow's metadata directory (then they write group files themselves).
    shares_disk: bool = True

    def __init__(self, spec: ExecutorSpec) -> None:
        self.spec = spec
        self.executor: Executor = self._start()

    def _start(self) -> Executor:
        return ProcessPoolExecutor(
            max_workers=self.spec.resolved_workers(),
            mp_context=worker_context(),
            initializer=init_worker,
            initargs=(self.spec.memory_limit_mb, parent_context()),
        )

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        return self.executor.submit(fn, *args, **kwargs)

    def kill(self) -> None:
        """Stop every worker now (a hung C extension ignores gentler requests) and reap them.

        Workers are SIGKILLed, then joined so no zombie or orphan outlives the pool;
        the executor's futures fail with BrokenProcessPool or are cancelled.
        """
        processes = list((getattr(self.executor, "_processes", None) or {}).values())
        for proc in processes:
            try:
                proc.kill()
            except Exception:  # noqa: BLE001 - already gone
                pass
        self.executor.shutdown(wait=False, cancel_futures=True)
        for proc in processes:
            try:
                proc.join(timeout=10)
            except Exception:  # noqa: BLE001 - not our child any more
                pass
        self._killed = True

    def restart(self) -> None:
        self.kill()
        self.executor = self._start()
        self._killed = False

    def close(self) -> None:
        """Wait for running work and stop the workers (after ``kill`` there is nothing to wait for)."""
        self.executor.shutdown(wait=not getattr(self, "_killed", False), cancel_futures=True)


def _globus_staging(spec: ExecutorSpec) -> ExtractionPool:
    from tasks.staging import staging_pool  # imported late: it wraps the pools defined here

    return staging_pool(spec)


def _fetch_staging(spec: ExecutorSpec) -> ExtractionPool:
    from tasks.fetch_staging import fetch_staging_pool  # imported late: it wraps the pools defined here

    return fetch_staging_pool(spec)


def _dask(spec: ExecutorSpec) -> ExtractionPool:
    from tasks.executor_dask import DaskPool  # imported late: distributed is heavy and optional

    return DaskPool(spec)


def _globus_compute(spec: ExecutorSpec) -> ExtractionPool:
    from tasks.executor_compute import ComputePool  # imported late: it subclasses ExtractionPool

    return ComputePool(spec)


class WrappingPool(ExtractionPool):
    """A pool that prepares each batch (staging, downloading) and runs it on an inner pool.

    Killing and restarting are the inner pool's business; subclasses add their own
    ``submit`` and ``close``.
    """

    shares_disk = False  # documents come back to the wrapper, which rewrites paths before writing

    def __init__(self, inner: ExtractionPool) -> None:  # no executor of its own: never calls super()
        self.inner = inner
        self.spec = inner.spec

    def kill(self) -> None:
        self.inner.kill()

    def restart(self) -> None:
        self.inner.restart()


PoolFactory = Callable[[ExecutorSpec], ExtractionPool]
#: executor kind -> pool factory; Dask and Globus Compute register themselves here.
EXECUTORS: dict[str, PoolFactory] = {"local": ExtractionPool, "globus-staging": _globus_staging,
                                     "dask": _dask, "globus-compute": _globus_compute,
                                     "fetch-staging": _fetch_staging}


def open_pool(spec: ExecutorSpec) -> ExtractionPool:
    try:
        factory = EXECUTORS[spec.kind]
    except KeyError:
        raise ValueError(f"unknown executor {spec.kind!r}; choose one of {sorted(EXECUTORS)}") from None
    return factory(spec)
