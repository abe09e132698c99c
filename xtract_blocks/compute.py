"""Globus Compute blocks: how extraction runs on a compute endpoint, and which functions are registered.

``GlobusComputeSettings`` is the per-deployment choice of container runtime and
image location; ``ComputeFunctionRegistry`` remembers, per service, the function
id and the checksum of the serialized entry function, so registration happens
once and again only when the function's code changes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from prefect.blocks.core import Block
from pydantic import Field

ContainerType = Literal["none", "apptainer", "singularity", "docker", "podman"]


class GlobusComputeSettings(Block):
    """Where and how extractors run on a Globus Compute endpoint."""

    _block_type_name = "Xtract Globus Compute Settings"
    _block_type_slug = "xtract-globus-compute-settings"
    _description = "Container runtime and images, payload limits and registry for Globus Compute extraction."

    container_type: ContainerType = Field(
        default="none", description="Container runtime the endpoint's user_endpoint_config template uses."
    )
    container_path: str = Field(
        default="", description="Directory of xtract-<family>.sif images, or an image registry prefix for docker."
    )
    container_tag: str = Field(default="latest", description="Tag of docker/podman (and docker://) images.")
    backend: Literal["sdk", "local-standin"] = Field(
        default="sdk",
        description="'sdk' submits through globus_compute_sdk.Executor (production); 'local-standin' runs the "
        "same payloads in local worker processes (a dry run without an endpoint).",
    )
    standin_dir: str = Field(
        default="~/.prefect-xtract/compute-standin", description="State directory of the local stand-in."
    )
    workers: int = Field(default=2, description="Worker processes of the local stand-in.")
    payload_limit_bytes: int = Field(
        default=10 * 1024 * 1024, description="Largest serialized task payload and result (service limit: 10 MB)."
    )
    registry_block: str = Field(
        default="xtract-compute-functions", description="Name of the ComputeFunctionRegistry block to use."
    )
    endpoint_id: str | None = Field(
        default=None,
        description="Compute endpoint id for a Globus data collection without one (no funcx_ep_id): each batch is "
        "staged by transfer to collection_id:staging_path and extracted there.",
    )
    collection_id: str | None = Field(
        default=None,
        description="Globus collection on the compute endpoint's filesystem: target of staging, home of "
        "remote_mdata_path.",
    )
    collection_root: str = Field(
        default="/", description="The directory on the compute endpoint's hosts that collection_id's '/' maps to."
    )
    staging_path: str = Field(
        default="/xtract-staging", description="Path on collection_id for staged copies (deleted after extraction)."
    )
    staging_bytes: int | None = Field(
        default=None, description="Most bytes staged on the compute endpoint at once (none: no cap)."
    )
    prefetch: int = Field(
        default=1, ge=0, description="Batches staged ahead while the staged ones are being extracted."
    )
    remote_mdata_path: str | None = Field(
        default="/xtract-remote-metadata",
        description="Path on collection_id where a group document over the result limit is written remotely and "
        "transferred back (needs the endpoint's local_ep_id); none: such a group loses its metadata.",
    )


class ComputeFunctionRegistry(Block):
    """Registered entry functions: one entry per service and function name."""

    _block_type_name = "Xtract Compute Function Registry"
    _block_type_slug = "xtract-compute-function-registry"
    _description = "Globus Compute function ids keyed by the checksum of the serialized function."

    functions: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="'<service>/<function name>' -> {function_id, checksum, registered_at}.",
    )

    def lookup(self, key: str, checksum: str) -> str | None:
        """The registered function id, if the stored checksum matches this code."""
        entry = self.functions.get(key)
        if entry and entry.get("checksum") == checksum:
            return str(entry["function_id"])
        return None

    def record(self, key: str, checksum: str, function_id: str) -> None:
        self.functions[key] = {"function_id": function_id, "checksum": checksum,
                               "registered_at": datetime.now(UTC).isoformat(timespec="seconds")}
