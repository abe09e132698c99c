"""Plan and open the pool for a run: one place that knows every engine and every staging wrapper.

``plan_pool`` turns an endpoint and a run's ``ExtractionOptions`` into a ``PoolSpec``:
the engine asked for, its typed options, and the habitat's staging when the workers
cannot read the files in place. ``open_pool`` starts it. Engines register in
``EXECUTORS`` (third parties through the ``xtract.executors`` entry point: a callable
taking a PoolSpec and returning an ExtractionPool); staging wrappers in ``WRAPPERS``,
keyed by the ``pool_kind`` of the habitat's staging config.
"""

from __future__ import annotations

import logging
import os
from dataclasses import replace
from functools import cache
from importlib.metadata import entry_points
from typing import Any

from tasks.habitats import habitat_for
from tasks.habitats.base import RunNeeds
from tasks.pools.base import ComputeOptions, ExtractionPool, PoolFactory, PoolSpec
from tasks.pools.fetch_staging import FetchStagingPool
from tasks.pools.options import ExtractionOptions, max_local_workers
from tasks.pools.process import ProcessPool
from tasks.pools.staging import StagingPool
from tasks.store.layout import MetadataDir
from xtract_blocks import XtractEndpoint
from xtract_blocks.compute import GlobusComputeSettings
from xtract_blocks.errors import ConfigurationError

log = logging.getLogger(__name__)


def _dask(spec: PoolSpec) -> ExtractionPool:
    from tasks.pools.dask import DaskPool  # imported late: distributed is heavy and optional

    return DaskPool(spec)


def _globus_compute(spec: PoolSpec) -> ExtractionPool:
    from tasks.pools.globus_compute.pool import ComputePool  # imported late: the SDK is heavy

    return ComputePool(spec)


#: executor kind -> pool factory
EXECUTORS: dict[str, PoolFactory] = {"local": ProcessPool, "dask": _dask, "globus-compute": _globus_compute}
#: a staging config's pool_kind -> the wrapper that stages each batch before the inner pool runs it
WRAPPERS: dict[str, Any] = {"globus-staging": StagingPool, "fetch-staging": FetchStagingPool}


@cache
def _plugin_executors() -> dict[str, PoolFactory]:
    found: dict[str, PoolFactory] = {}
    for ep in entry_points(group="xtract.executors"):
        try:
            found[ep.name] = ep.load()
        except Exception as exc:  # noqa: BLE001 - a broken plugin must not stop the built-in engines
            log.warning("could not load executor plugin %s: %s", ep.name, exc)
    return found


def executor_factory(kind: str) -> PoolFactory:
    factory = EXECUTORS.get(kind) or _plugin_executors().get(kind)
    if factory is None:
        known = sorted({*EXECUTORS, *_plugin_executors()})
        raise ConfigurationError(f"unknown executor {kind!r}; choose one of {known}")
    return factory


def open_pool(spec: PoolSpec) -> ExtractionPool:
    """Start the pool a spec describes (wrapped in its staging, if any)."""
    if spec.staging is not None:
        inner = open_pool(replace(spec, staging=None))
        return WRAPPERS[spec.staging.pool_kind](inner, spec.staging)
    return executor_factory(spec.kind)(spec)


def bounded_workers(workers: int | None, kind: str = "local", dask_address: str | None = None) -> int | None:
    """Refuse nothing, but never start more workers *on this machine* than it can use.

    Local processes and a LocalCluster are clamped (cores and available memory,
    ``tasks.pools.options.max_local_workers``); an existing Dask cluster or a Globus
    Compute endpoint sizes itself, so their figure passes through.
    """
    if kind == "globus-compute" or (kind == "dask" and dask_address):
        return workers
    limit = max_local_workers()
    if workers is not None and workers > limit:
        log.warning("--workers %d is more than this machine can use; using %d (%d per core)",
                    workers, limit, limit // (os.cpu_count() or 1))
        return limit
    return workers


def compute_options(ep: XtractEndpoint, settings: GlobusComputeSettings, out: MetadataDir,
                    transfer_timeout_s: float) -> ComputeOptions:
    """The compute endpoint (the data's own funcx_ep_id, else the settings') and how big results come home."""
    remote_results = None
    if ep.credentials is not None and settings.collection_id and settings.remote_mdata_path and ep.local_ep_id:
        from tasks.pools.globus_compute.remote_results import RemoteResults  # imported late: Globus only

        remote_results = RemoteResults(
            credentials=ep.credentials, collection_id=settings.collection_id, collection_root=settings.collection_root,
            remote_path=settings.remote_mdata_path, local_ep=ep.local_ep_id, local_ep_root=ep.local_ep_root,
            local_dir=out.remote_results, timeout_s=transfer_timeout_s,
            fault_timeout_s=min(600.0, transfer_timeout_s))
    return ComputeOptions(endpoint_id=ep.funcx_ep_id or settings.endpoint_id, settings=settings,
                          credentials=ep.credentials, remote_results=remote_results)


def load_compute_settings(value: GlobusComputeSettings | str | None) -> GlobusComputeSettings | None:
    """The compute settings block, loaded by name when given as one."""
    return GlobusComputeSettings.load(value) if isinstance(value, str) else value


def plan_pool(ep: XtractEndpoint, options: ExtractionOptions, out: MetadataDir,
              settings: GlobusComputeSettings | None = None) -> PoolSpec:
    """The pool for one endpoint's run: the engine asked for, with the habitat's staging when needed."""
    spec = PoolSpec(kind=options.executor, workers=bounded_workers(options.workers, options.executor,
                                                                   options.dask_address),
                    memory_limit_mb=options.memory_limit_mb, dask_address=options.dask_address)
    executor_factory(spec.kind)  # an unknown engine fails here, before any work
    if spec.kind == "globus-compute":
        spec.compute = compute_options(ep, settings or GlobusComputeSettings(), out, options.transfer_timeout_s)
    needs = RunNeeds(executor=spec.kind, workers=spec.workers, compute_settings=settings)
    spec.staging = habitat_for(ep).staging(ep, needs, out, timeout_s=options.transfer_timeout_s)
    return spec
