"""Containers stage: decide, and record, what runs each extractor.

For the local process pool every extractor runs as a Python function in the
pool's workers; remote compute (Globus Compute) adds container images and
function registration on top of the same plan.
"""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE

from extractors.registry import default_registry
from tasks.status import artifact_key, publish_safely


def local_plan(by_extractor: dict[str, int], executor: str) -> list[dict[str, Any]]:
    """One row per extractor the groups need: name, version, where it runs, group files."""
    registry = default_registry()
    rows = []
    for name, files in sorted(by_extractor.items(), key=lambda kv: -kv[1]):
        if name == "auto":
            rows.append({"extractor": "auto (decided from content)", "version": registry.signature[:60],
                         "runs_on": executor, "container": None, "files": files})
            continue
        ex = registry.get(name)
        rows.append({"extractor": name, "version": ex.version, "runs_on": executor, "container": None,
                     "files": files})
    return rows


@task(name="register-containers", cache_policy=NO_CACHE, task_run_name="containers-{endpoint_name}")
def register_containers(by_extractor: dict[str, int], executor: str = "local", *,
                        endpoint_name: str = "endpoint") -> list[dict[str, Any]]:
    """Resolve the extractor for each group family and publish the plan as a table."""
    plan = local_plan(by_extractor, executor)
    publish_safely(create_table_artifact, table=plan, key=artifact_key(endpoint_name, "containers"),
          description=f"Extractors and where they run for {endpoint_name}")
    return plan
