"""Containers stage: decide, and record, what runs each extractor.

For the local process pool and Dask every extractor runs as a Python function in
the workers. For Globus Compute each extractor family runs in its own container
image, chosen per submission through the endpoint's ``user_endpoint_config``
template (``container_type``, ``container_uri``; the SDK dropped
``register_container``/``ContainerSpec`` in 4.6), and the one entry function is
registered once per code checksum (``tasks.compute.registration``).

Image naming convention (docs/compute.md): family ``tabular`` ->
``<container_path>/xtract-tabular.sif`` for apptainer/singularity, or
``<container_path>/xtract-tabular:<tag>`` for docker/podman (and for apptainer when
container_path is a ``docker://`` or ``oras://`` prefix). Groups whose extractor is
decided only at extraction time, or that mix families, use ``xtract-all``.
"""

from __future__ import annotations

import os
from typing import Any

from prefect import task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE

from extractors.registry import default_registry
from tasks.status import artifact_key, publish_safely
from xtract_blocks.compute import GlobusComputeSettings

#: Family of groups whose extractor is only known at extraction time (image with every extractor).
ALL = "all"


def family_of(group: dict[str, Any]) -> str:
    """The container family a group runs in: its provisional extractor, else the all-in-one image."""
    return group.get("extractor") or ALL


def container_uri(family: str, settings: GlobusComputeSettings) -> str | None:
    """The image for one extractor family under settings.container_path (None: no container)."""
    if settings.container_type == "none":
        return None
    path = settings.container_path.rstrip("/")
    if not path:
        raise ValueError(f"container_type {settings.container_type!r} needs a container_path")
    name = f"xtract-{family}"
    if settings.container_type in ("docker", "podman") or path.startswith(("docker://", "oras://")):
        return f"{path}/{name}:{settings.container_tag}"
    return os.path.join(path, f"{name}.sif")


def user_endpoint_config(family: str, settings: GlobusComputeSettings) -> dict[str, Any] | None:
    """Template values a submission passes to the endpoint to run in the family's container."""
    uri = container_uri(family, settings)
    if uri is None:
        return None
    return {"container_type": settings.container_type, "container_uri": uri}


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


def register_compute_function(compute: dict[str, Any], endpoint_name: str) -> dict[str, Any]:
    """Register the entry function unless its checksum is already in the registry; publish the registry."""
    from tasks.compute.registration import ensure_registered, load_registry, make_backend

    settings: GlobusComputeSettings = compute.get("settings") or GlobusComputeSettings()
    backend = make_backend(compute.get("endpoint_id"), settings, compute.get("credentials"))
    entry = ensure_registered(backend, settings.registry_block)
    rows = [{"function": key, "function_id": e["function_id"], "checksum": e["checksum"][:16],
             "registered_at": e["registered_at"], "this_run": entry["status"] if key == entry["key"] else "-"}
            for key, e in sorted(load_registry(settings.registry_block).functions.items())]
    publish_safely(create_table_artifact, table=rows, key=artifact_key(endpoint_name, "compute-functions"),
                   description=f"Registered Globus Compute functions (registry block {settings.registry_block})")
    return entry


@task(name="register-containers", cache_policy=NO_CACHE, task_run_name="containers-{endpoint_name}")
def register_containers(by_extractor: dict[str, int], executor: str = "local", *,
                        endpoint_name: str = "endpoint", compute: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Resolve the extractor (and, on Globus Compute, the container) of each group family; publish the plan.

    ``compute`` (the 'globus-compute' ExecutorSpec.options) also registers the entry function once.
    """
    settings = (compute or {}).get("settings") if executor == "globus-compute" else None
    plan = local_plan(by_extractor, executor, settings or (GlobusComputeSettings() if compute else None))
    if executor == "globus-compute" and compute is not None:
        entry = register_compute_function(compute, endpoint_name)
        for row in plan:
            row["function_id"] = entry["function_id"]
    publish_safely(create_table_artifact, table=plan, key=artifact_key(endpoint_name, "containers"),
          description=f"Extractors and where they run for {endpoint_name}")
    return plan
