"""What every extraction pool is: a ``concurrent.futures.Executor`` that can be killed and restarted.

The xtract stage (batching, retries, watchdog, journal) talks only to this interface, so a
new engine is one subclass and one registry entry (tasks/pools/plan.py), never a
home-made scheduler. ``PoolSpec`` is what a pool needs to start and restart.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any


@dataclass
class ComputeOptions:
    """What the Globus Compute pool needs: the endpoint, its settings block and the credentials."""

    endpoint_id: str | None = None
    settings: Any = None  # xtract_blocks.compute.GlobusComputeSettings
    credentials: Any = None  # xtract_blocks.credentials.GlobusCredentials
    function_id: str | None = None  # skip registration (tests, pre-registered functions)
    remote_results: Any = None  # tasks.pools.globus_compute.remote_results.RemoteResults

    def __repr__(self) -> str:  # the credentials never reach a log line
        return f"ComputeOptions(endpoint_id={self.endpoint_id!r}, function_id={self.function_id!r})"


@dataclass
class PoolSpec:
    """What the xtract stage needs to know to start (and restart) its pool."""

    kind: str = "local"
    workers: int | None = None
    memory_limit_mb: int | None = 4096
    #: scheduler of an existing Dask cluster ('dask'; None starts a LocalCluster)
    dask_address: str | None = None
    compute: ComputeOptions | None = None
    #: a habitat's staging config (its ``pool_kind`` names the wrapper); None: workers read files in place
    staging: Any = None

    def resolved_workers(self) -> int:
        return max(1, self.workers or (os.cpu_count() or 1))


class ExtractionPool:
    """An executor that can be killed and restarted when a worker dies or hangs (one per engine)."""

    #: Whether workers see the flow's metadata directory (then they write group files themselves).
    shares_disk: bool = True

    def __init__(self, spec: PoolSpec) -> None:
        self.spec = spec
        self.executor: Executor = self._start()

    def _start(self) -> Executor:
        raise NotImplementedError

    def capacity(self) -> int:
        """How many batches the engine runs at once (the xtract stage sizes batches and in-flight work by it)."""
        return self.spec.resolved_workers()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        return self.executor.submit(fn, *args, **kwargs)

    def check(self) -> None:
        """Raise the engine's error when it is known to be gone (called between waits; cheap, rate-limited).

        A local pool reports a dead worker through its futures; an engine behind a connection
        (a Dask scheduler) can vanish with every future still pending, which only the batch
        deadline would otherwise notice.
        """

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


class WrappingPool(ExtractionPool):
    """A pool that prepares each batch (staging, downloading) and runs it on an inner pool.

    Killing and restarting are the inner pool's business; subclasses add their own
    ``submit`` and ``close``.
    """

    shares_disk = False  # documents come back to the wrapper, which rewrites paths before writing

    def __init__(self, inner: ExtractionPool) -> None:  # no executor of its own: never calls super()
        self.inner = inner
        self.spec = inner.spec

    def capacity(self) -> int:
        return self.inner.capacity()

    def check(self) -> None:
        self.inner.check()

    def kill(self) -> None:
        self.inner.kill()

    def restart(self) -> None:
        self.inner.restart()


PoolFactory = Callable[[PoolSpec], ExtractionPool]
