"""Where extraction runs: any ``concurrent.futures.Executor``.

The default is a local process pool (spawned workers with a memory cap). Other
engines (Dask, Globus Compute) plug in through ``EXECUTORS`` with the same
interface, so scaling out never needs a home-made scheduler.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

from extractors.limits import init_worker


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
            mp_context=multiprocessing.get_context("spawn"),
            initializer=init_worker,
            initargs=(self.spec.memory_limit_mb,),
        )

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        return self.executor.submit(fn, *args, **kwargs)

    def kill(self) -> None:
        """Stop every worker now (a hung C extension ignores gentler requests)."""
        processes = getattr(self.executor, "_processes", None) or {}
        for proc in list(processes.values()):
            try:
                proc.kill()
            except Exception:  # noqa: BLE001 - already gone
                pass
        self.executor.shutdown(wait=False, cancel_futures=True)

    def restart(self) -> None:
        self.kill()
        self.executor = self._start()

    def close(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)


PoolFactory = Callable[[ExecutorSpec], ExtractionPool]
#: executor kind -> pool factory; Dask and Globus Compute register themselves here.
EXECUTORS: dict[str, PoolFactory] = {"local": ExtractionPool}


def open_pool(spec: ExecutorSpec) -> ExtractionPool:
    try:
        factory = EXECUTORS[spec.kind]
    except KeyError:
        raise ValueError(f"unknown executor {spec.kind!r}; choose one of {sorted(EXECUTORS)}") from None
    return factory(spec)
