"""Dask as an ExtractionPool: an existing scheduler, or a LocalCluster sized to the machine.

The LocalCluster uses worker *processes* with one thread each: the extractors are
CPU-bound Python, and a worker's nanny enforces the memory limit by restarting
the process. Tasks run in a worker thread, where the extractors' SIGALRM time
limit cannot fire (``extractors.limits.time_limit`` is a no-op off the main
thread), so a hung batch is caught by ExtractionRun's deadline instead, and
``kill`` restarts only the workers running this pool's tasks.

Batches are submitted with ``pure=False``: a retried batch has the same arguments
and must not be answered from the failed first attempt. Workers need the
``extractors`` package importable (``pip install prefect-xtract`` on the workers).
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any

from tasks.pools.base import ExtractionPool, PoolSpec
from xtract_blocks.errors import ComputeError

#: Times the scheduler re-runs a task whose worker died before it fails with KilledWorker (LocalCluster).
ALLOWED_FAILURES = 1
#: Seconds between looks at an existing cluster's scheduler, and failed looks in a row that mean it is gone
#: (one refused or slow connection on a loaded machine is not enough to abandon a run).
WATCH_EVERY_S = 2.0
WATCH_MISSES = 3


class DaskPool(ExtractionPool):
    """Batches through ``distributed.Client.submit``; the flow writes the returned documents."""

    #: A remote cluster does not see the flow's metadata directory; a LocalCluster would, but one
    #: code path for both keeps the results identical.
    shares_disk = False

    def __init__(self, spec: PoolSpec) -> None:
        self.cluster: Any = None
        self.client: Any = None
        self._next_look = 0.0
        self._misses = 0
        super().__init__(spec)

    def _start(self) -> Executor:
        import dask
        from distributed import Client, LocalCluster

        if self.client is None:
            if self.spec.dask_address:
                self.client = Client(self.spec.dask_address, timeout=30)
            else:
                memory = f"{self.spec.memory_limit_mb}MiB" if self.spec.memory_limit_mb else "auto"
                with dask.config.set({"distributed.scheduler.allowed-failures": ALLOWED_FAILURES}):
                    self.cluster = LocalCluster(n_workers=self.spec.resolved_workers(), threads_per_worker=1,
                                                processes=True, memory_limit=memory, dashboard_address=None)
                self.client = Client(self.cluster)
        return self.client.get_executor(pure=False)

    def capacity(self) -> int:
        """The cluster's task slots (threads of every worker); an existing cluster is not sized by --workers."""
        try:
            workers = self.client.scheduler_info().get("workers", {})
            slots = sum(int(w.get("nthreads", 1)) for w in workers.values())
        except Exception:  # noqa: BLE001 - a scheduler that does not answer: the configured figure
            slots = 0
        return slots or self.spec.resolved_workers()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        if fn.__name__ == "run_batch":
            kwargs["out_dir"] = None  # documents travel back: workers may not share our disk
        try:
            return self.executor.submit(fn, *args, **kwargs)
        except Exception as exc:
            if self._scheduler_gone():
                raise self._lost(exc) from None
            raise

    def check(self) -> None:
        """A scheduler that stopped answering ends the run in seconds, not at the batch deadline."""
        now = time.monotonic()
        if now < self._next_look:
            return
        self._next_look = now + WATCH_EVERY_S
        self._misses = self._misses + 1 if self._scheduler_gone() else 0
        if self._misses >= WATCH_MISSES:
            raise self._lost(ConnectionError("the scheduler stopped answering"))

    def kill(self) -> None:
        """Restart the workers processing anything (a hung C extension ignores cancellation).

        Not when the scheduler is known gone: every call through the client would wait out its
        reconnect timeout, and there is no scheduler left to cancel anything on.
        """
        if self._misses >= WATCH_MISSES:
            return
        try:
            self._kill_busy()
        except Exception as exc:
            if self._scheduler_gone():
                raise self._lost(exc) from None
            raise

    def _kill_busy(self) -> None:
        ours = {f.key for f in list(getattr(self.executor, "_futures", ()))}
        busy = [w for w, keys in (self.client.processing() or {}).items() if ours & set(keys)]
        self.executor.shutdown(wait=False)  # cancels this pool's futures
        if not busy:
            return
        if self.cluster is not None:
            # Our own LocalCluster: SIGKILL the busy worker processes; their nannies start fresh ones.
            # (A graceful restart waits on a thread stuck in C code and can time out.) The pid comes
            # from the worker's event loop, which still answers while its task thread is stuck.
            for pid in self.client.run(os.getpid, workers=busy).values():
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            return
        try:
            self.client.restart_workers(busy, timeout=120)
        except (TimeoutError, OSError) as exc:  # a remote cluster: leave a stuck worker to its nanny
            logging.getLogger(__name__).warning("could not restart Dask workers %s: %s", busy, exc)

    def _scheduler_gone(self) -> bool:
        """The client gave up on its scheduler, or (an existing cluster) the scheduler's port refuses connections."""
        if getattr(self.client, "status", "running") not in ("running", "connecting", "newly-created"):
            return True
        if not self.spec.dask_address:
            return False
        import socket
        from urllib.parse import urlsplit

        where = urlsplit(self.spec.dask_address)
        try:
            with socket.create_connection((where.hostname or "127.0.0.1", where.port or 8786), timeout=2):
                return False
        except OSError:
            return True

    def _lost(self, exc: BaseException) -> ComputeError:
        where = self.spec.dask_address or "of the LocalCluster"
        return ComputeError(f"the Dask scheduler {where} went away ({type(exc).__name__}); what was extracted is "
                            "kept: rerun the same command, once a scheduler is back, to resume")

    def restart(self) -> None:
        try:
            self.kill()
            self.executor = self._start()
        except Exception as exc:
            if self._scheduler_gone():
                raise self._lost(exc) from None
            raise

    def close(self) -> None:
        try:
            self.executor.shutdown(wait=False)
        except Exception:  # noqa: BLE001 - a scheduler that went away has nothing left to cancel
            if not self._scheduler_gone():
                raise
        finally:
            self.client.close()
            if self.cluster is not None:
                self.cluster.close()
