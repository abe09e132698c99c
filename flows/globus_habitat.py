"""What the endpoint flow does differently for Globus: checks, staging, offload by transfer, Search.

Kept apart from flows/endpoint_flow.py so the flow stays a readable list of
stages; each function here is one decision the flow delegates.
"""

from __future__ import annotations

import os
from typing import Any

from tasks.compute.remote_results import RemoteResults, collection_to_host
from tasks.executors import ExecutorSpec
from tasks.globus_offload import offload_globus
from tasks.globus_search import search_ingest
from tasks.staging import StagingConfig
from xtract_blocks import CredentialsError, XtractEndpoint
from xtract_blocks.compute import GlobusComputeSettings
from xtract_blocks.credentials import SEARCH_RS, TRANSFER_RS

DEFAULT_VISIBLE_TO = ["public"]


def globus_problem(ep: XtractEndpoint, *, dest_endpoint_id: str | None, search_index_id: str | None,
                   executor: str = "local", compute_settings: GlobusComputeSettings | None = None) -> str | None:
    """The first thing that stops a Globus run, as a message naming the field; None when all is set.

    Fetches the tokens it will need, so a bad credential fails here, before any work.
    """
    needs_globus = ep.repo_type == "globus" or dest_endpoint_id or search_index_id
    if not needs_globus:
        return None
    if ep.credentials is None:
        return "XtractEndpoint.credentials is not set: Globus crawl, offload and Search need a GlobusCredentials block"
    if ep.repo_type == "globus" and not ep.globus_ep_id:
        return "XtractEndpoint.globus_ep_id is not set: name the collection to crawl"
    if dest_endpoint_id and not ep.local_ep_id:
        return "XtractEndpoint.local_ep_id is not set: offload by transfer needs the collection exposing this machine"
    if needs_staging(ep) and executor == "globus-compute":
        settings = compute_settings or GlobusComputeSettings()
        if not settings.endpoint_id or not settings.collection_id:
            return ("GlobusComputeSettings.endpoint_id and collection_id are not set: the collection has no compute "
                    "endpoint (funcx_ep_id), so its files are staged to a compute endpoint's collection")
    elif needs_staging(ep) and not ep.local_ep_id:
        return ("XtractEndpoint.local_ep_id is not set: without a compute endpoint (funcx_ep_id) the collection's "
                "files are staged by transfer to the collection exposing this machine")
    try:
        ep.credentials.check(TRANSFER_RS, *([SEARCH_RS] if search_index_id else []))
    except CredentialsError as exc:
        return str(exc)
    return None


def needs_staging(ep: XtractEndpoint) -> bool:
    return ep.repo_type == "globus" and not ep.funcx_ep_id


def extraction_spec(ep: XtractEndpoint, executor: str, workers: int | None, out_dir: str, *,
                    transfer_timeout_s: float = 3600.0,
                    compute_settings: GlobusComputeSettings | None = None) -> ExecutorSpec:
    """The executor for the xtract stage: as asked, wrapped in Globus staging when the data is remote."""
    if executor == "globus-compute":
        return compute_spec(ep, workers, out_dir, compute_settings or GlobusComputeSettings(),
                            transfer_timeout_s=transfer_timeout_s)
    if not needs_staging(ep):
        return ExecutorSpec(kind=executor, workers=workers)
    assert ep.credentials is not None and ep.globus_ep_id and ep.local_ep_id  # checked by globus_problem
    staging_dir = ep.staging_dir or os.path.join(out_dir, ".xtract", "staging")
    config = StagingConfig(credentials=ep.credentials, source_ep=ep.globus_ep_id, local_ep=ep.local_ep_id,
                           staging_dir=os.path.abspath(os.path.expanduser(staging_dir)),
                           local_ep_root=ep.local_ep_root, timeout_s=transfer_timeout_s,
                           fault_timeout_s=min(600.0, transfer_timeout_s))
    return ExecutorSpec(kind="globus-staging", workers=workers, options={"inner": executor, "staging": config})


def compute_spec(ep: XtractEndpoint, workers: int | None, out_dir: str, settings: GlobusComputeSettings, *,
                 transfer_timeout_s: float) -> ExecutorSpec:
    """Globus Compute, staged to settings.collection_id first when the data collection has no compute endpoint.

    Oversized group documents come back by transfer when the compute endpoint's collection and the
    collection exposing this machine (local_ep_id) are both known; otherwise they are error records.
    """
    options: dict[str, Any] = {}
    fault_timeout_s = min(600.0, transfer_timeout_s)
    if ep.credentials is not None and settings.collection_id and settings.remote_mdata_path and ep.local_ep_id:
        options["remote_results"] = RemoteResults(
            credentials=ep.credentials, collection_id=settings.collection_id, collection_root=settings.collection_root,
            remote_path=settings.remote_mdata_path, local_ep=ep.local_ep_id, local_ep_root=ep.local_ep_root,
            local_dir=os.path.join(out_dir, ".xtract", "remote-results"), timeout_s=transfer_timeout_s,
            fault_timeout_s=fault_timeout_s)
    if not needs_staging(ep):
        return ExecutorSpec(kind="globus-compute", workers=workers, options=options or None)
    assert ep.credentials is not None and ep.globus_ep_id and settings.collection_id  # checked by globus_problem
    spec = ExecutorSpec(kind="globus-compute", workers=workers)
    config = StagingConfig(credentials=ep.credentials, source_ep=ep.globus_ep_id, local_ep=settings.collection_id,
                           staging_dir=collection_to_host(settings.staging_path, settings.collection_root),
                           local_ep_root=settings.collection_root, timeout_s=transfer_timeout_s,
                           fault_timeout_s=fault_timeout_s, remote=True, max_bytes=settings.staging_bytes,
                           max_staged=spec.resolved_workers() + settings.prefetch)
    return ExecutorSpec(kind="globus-staging", workers=workers,
                        options={"inner": "globus-compute", "staging": config, **options})


def offload_by_globus(ep: XtractEndpoint, sources: dict[str, str], dest_endpoint_id: str, dest_path: str, *,
                      delete_source: bool, timeout_s: float = 3600.0) -> dict[str, Any]:
    assert ep.credentials is not None and ep.local_ep_id
    return offload_globus(ep.credentials, sources, ep.local_ep_id, dest_endpoint_id, dest_path,
                          local_ep_root=ep.local_ep_root, delete_source=delete_source, timeout_s=timeout_s)


def ingest_to_search(ep: XtractEndpoint, index_id: str, out_dir: str, *, visible_to: list[str] | None,
                     endpoint_name: str) -> dict[str, Any]:
    assert ep.credentials is not None
    return search_ingest(ep.credentials, index_id, out_dir, ep.globus_ep_id or "local",
                         visible_to=visible_to or DEFAULT_VISIBLE_TO, endpoint_name=endpoint_name)
