"""Offload stage: copy (or transfer) metadata directories to their destination under a timestamp folder.

A destination collection (``dest_endpoint_id``) means a Globus transfer; otherwise the
destination is a directory of this machine. Either way only the published contract moves.
"""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel, Field

from tasks.habitats.globus import offload_by_globus
from tasks.habitats.local_offload import offload_local
from xtract_blocks import XtractEndpoint


class OffloadOptions(BaseModel):
    """Where the metadata goes beyond the endpoint's local_mdata_path."""

    dest_path: str | None = Field(
        default=None, description="Copy the metadata under dest_path/YYYY-MM-DD-hh:mm:ss/ ('' = the destination's "
        "default directory: the current directory, or a collection's default directory).")
    dest_endpoint_id: str | None = Field(
        default=None, description="Offload by Globus transfer to dest_path on this collection (docs/globus.md).")
    delete_source: bool = Field(default=False, description="Remove the local metadata after a verified offload.")
    search_index_id: str | None = Field(default=None, description="Ingest the metadata into this Globus Search "
                                        "index.")
    search_visible_to: list[str] | None = Field(default=None, description="Who may see the Search entries "
                                                "(default ['public']).")


@task(name="offload", cache_policy=NO_CACHE)
def offload(sources: dict[str, str], dest_path: str, *, delete_source: bool = False,
            dest_endpoint_id: str | None = None, endpoint: XtractEndpoint | None = None,
            timeout_s: float = 3600.0) -> dict[str, Any]:
    """Copy metadata directories (endpoint name -> dir) to dest_path/YYYY-MM-DD-hh:mm:ss/."""
    if dest_endpoint_id:
        assert endpoint is not None, "offload by transfer needs the endpoint block (its credentials)"
        path = offload_by_globus(endpoint, sources, dest_endpoint_id, dest_path, delete_source=delete_source,
                                 timeout_s=timeout_s)["path"]
    else:
        path = offload_local(sources, dest_path, delete_source=delete_source)
    get_run_logger().info("offloaded metadata of %d endpoint(s) to %s", len(sources), path)
    return {"path": path, "endpoints": sorted(sources)}


def one_source_per_directory(by_endpoint: dict[str, str]) -> dict[str, str]:
    """{endpoint: metadata dir} -> {name: metadata dir}, one entry per directory.

    Endpoints sharing a metadata directory share one index: it is copied once, named after
    all of them (``a+b``), rather than once per endpoint.
    """
    names: dict[str, list[str]] = {}
    for key, root in by_endpoint.items():
        names.setdefault(root, []).append(key)
    return {"+".join(keys)[:120]: root for root, keys in names.items()}
