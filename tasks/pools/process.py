"""The default pool: local worker processes with a memory cap, forked from a server that imported extractors once."""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import Executor, ProcessPoolExecutor
from multiprocessing.context import BaseContext
from typing import Any

from extractors.batch import current_umask
from extractors.limits import init_worker
from tasks.pools.base import ExtractionPool

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


class ProcessPool(ExtractionPool):
    """Local worker processes (``executor='local'``)."""

    def _start(self) -> Executor:
        return ProcessPoolExecutor(
            max_workers=self.spec.resolved_workers(),
            mp_context=worker_context(),
            initializer=init_worker,
            initargs=(self.spec.memory_limit_mb, parent_context()),
        )
