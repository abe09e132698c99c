"""Which container image runs each extractor family on a Globus Compute endpoint.

Each family runs in its own image, chosen per submission through the endpoint's
``user_endpoint_config`` template (``container_type``, ``container_uri``; the SDK dropped
``register_container``/``ContainerSpec`` in 4.6). Naming convention (docs/compute.md):
family ``tabular`` -> ``<container_path>/xtract-tabular.sif`` for apptainer/singularity, or
``<container_path>/xtract-tabular:<tag>`` for docker/podman (and for apptainer when
container_path is a ``docker://`` or ``oras://`` prefix). Groups whose extractor is decided
only at extraction time, or that mix families, use ``xtract-all``.
"""

from __future__ import annotations

import os
from typing import Any

from xtract_blocks.compute import GlobusComputeSettings
from xtract_blocks.errors import ConfigurationError

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
        raise ConfigurationError(f"container_type {settings.container_type!r} needs a container_path")
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
