"""Containers stage: decide, and record, what runs each extractor.

For the local process pool and Dask every extractor runs as a Python function in
the workers. For Globus Compute each extractor family runs in its own container
image, chosen per submission through the endpoint's ``user_endpoint_config``
template (``container_type``, ``container_uri``; the SDK dropped
``register_container``/``ContainerSpec`` in 4.6), and the one entry function is
registered once per code checksum (``tasks.pools.globus_compute.registration``).

Image naming: tasks/pools/globus_compute/containers.py.
"""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE

from extractors.registry import default_registry
from tasks.artifacts import COMPUTE_FUNCTIONS, CONTAINERS, artifact_key
from tasks.pools.base import ComputeOptions
from tasks.pools.globus_compute.containers import ALL, container_uri
from tasks.status import publish_safely
from xtract_blocks.compute import GlobusComputeSettings


def local_plan(by_extractor: dict[str, int], executor: str,
               settings: GlobusComputeSettings | None = None) -> list[dict[str, Any]]:
    """One row per extractor the groups need: name, version, where it runs, its container, group files."""
    registry = default_registry()
    rows = []
    for name, files in sorted(by_extractor.items(), key=lambda kv: -kv[1]):
        family = ALL if name == "auto" else name
        container = container_uri(family, settings) if settings is not None else None
        if name == "auto":
            rows.append({"extractor": "auto (decided from content)", "version": registry.signature[:60],
                         "runs_on": executor, "container": container, "files": files})
            continue
        ex = registry.get(name)
        rows.append({"extractor": name, "version": ex.version, "runs_on": executor, "container": container,
                     "files": files})
    return rows


def register_compute_function(compute: ComputeOptions, endpoint_name: str) -> dict[str, Any]:
    """Register the entry function unless its checksum is already in the registry; publish the registry."""
    # imported here: the Globus Compute SDK is heavy, and local runs never need it
    from tasks.pools.globus_compute.registration import ensure_registered, load_registry, make_backend

    settings: GlobusComputeSettings = compute.settings or GlobusComputeSettings()
    backend = make_backend(compute.endpoint_id, settings, compute.credentials)
    entry = ensure_registered(backend, settings.registry_block)
    rows = [{"function": key, "function_id": e["function_id"], "checksum": e["checksum"][:16],
             "registered_at": e["registered_at"], "this_run": entry["status"] if key == entry["key"] else "-"}
            for key, e in sorted(load_registry(settings.registry_block).functions.items())]
    publish_safely(create_table_artifact, table=rows, key=artifact_key(endpoint_name, COMPUTE_FUNCTIONS),
                   description=f"Registered Globus Compute functions (registry block {settings.registry_block})")
    return entry


@task(name="register-containers", cache_policy=NO_CACHE, task_run_name="containers-{endpoint_name}")
def register_containers(by_extractor: dict[str, int], executor: str = "local", *,
                        endpoint_name: str = "endpoint", compute: ComputeOptions | None = None,
                        settings: GlobusComputeSettings | None = None) -> list[dict[str, Any]]:
    """Resolve the extractor (and, on Globus Compute, the container) of each group family; publish the plan.

    ``compute`` (the Globus Compute pool's options) also registers the entry function once.
    ``settings``: the run's compute settings when the pool is not Globus Compute; their
    container_path is shown (as unused) so the artifact says what the run really did with it.
    """
    unused_path = settings.container_path if compute is None and settings is not None else ""
    settings = compute.settings if compute is not None else None
    plan = local_plan(by_extractor, executor, settings or (GlobusComputeSettings() if compute else None))
    if unused_path:
        for row in plan:
            row["container"] = f"not used ({executor} runs Python functions): {unused_path}"
    if compute is not None:
        entry = register_compute_function(compute, endpoint_name)
        for row in plan:
            row["function_id"] = entry["function_id"]
    publish_safely(create_table_artifact, table=plan, key=artifact_key(endpoint_name, CONTAINERS),
          description=f"Extractors and where they run for {endpoint_name}")
    return plan
