"""What a run asks of extraction: one options model, so the flow's form stays short.

``ExtractionOptions`` is the flow parameter (and what the CLI fills from its flags); the
Globus Compute settings are a block, so they stay a flow parameter of their own (the UI's
block selector works on top-level parameters only);
``tasks.pools.plan.plan_pool`` turns it, with the endpoint and its habitat, into the
``PoolSpec`` a pool starts from.
"""

from __future__ import annotations

import os
from typing import Literal

from pydantic import BaseModel, Field

ExecutorKind = Literal["local", "dask", "globus-compute"]

#: The most local workers one run may start: more than this many per core only queue for the CPU
#: while each holds its own memory (docs/reliability.md).
MAX_WORKERS_PER_CORE = 4
#: What one idle extraction worker holds resident (its imports), rounded up: the memory bound of the
#: worker count is the machine's available memory over this, so a huge --workers cannot swap it to death.
WORKER_RESIDENT_MB = 150
#: Groups per executor call: beyond this a batch only delays its results and the journal's commits.
MAX_BATCH_SIZE = 10_000


def available_memory_mb() -> int | None:
    """MemAvailable from /proc/meminfo (None where there is none): what new workers may use without swapping."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) // 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def max_local_workers() -> int:
    """The most workers this machine can use: a few per core, and no more than its free memory holds."""
    by_cores = MAX_WORKERS_PER_CORE * (os.cpu_count() or 1)
    free = available_memory_mb()
    return by_cores if free is None else max(1, min(by_cores, free // WORKER_RESIDENT_MB))


class ExtractionOptions(BaseModel):
    """Where and how extractors run for one flow run."""

    executor: ExecutorKind = Field(
        default="local", description="Where extractors run: local processes, a Dask cluster, or Globus Compute.")
    workers: int | None = Field(
        default=None, ge=1, description="Workers for the local (and LocalCluster) executor; default: all cores.")
    batch_size: int | None = Field(default=None, ge=1, le=MAX_BATCH_SIZE,
                                   description="Groups per executor call (default: sized to the run).")
    time_limit_s: float = Field(default=120.0, gt=0, description="Wall-time limit per group; past it the group "
                                "becomes an error record.")
    memory_limit_mb: int | None = Field(default=4096, ge=64, description="Memory cap of each local worker.")
    transfer_timeout_s: float = Field(default=3600.0, gt=0, description="How long a staging or offload transfer "
                                      "may take before it is cancelled.")
    lock_timeout_s: float = Field(default=600.0, ge=0, description="How long to wait while another run writes the "
                                  "same metadata directory (its state lock) before failing with the holder's name.")
    retry_failed: bool = Field(default=True, description="Extract again the groups that failed in an earlier run "
                               "(off: keep their error records until the files change).")
    dask_address: str | None = Field(default=None, description="Scheduler of an existing Dask cluster "
                                     "(executor 'dask'; default: a LocalCluster).")
