"""repo_type 'globus': a Globus collection, crawled by Transfer ls, staged by transfer when no compute is near.

Also the Globus side of what any endpoint may ask for: offload by transfer to a
destination collection, and Globus Search ingest (``check_globus_destinations``
validates both before any work).
"""

from __future__ import annotations

from typing import Any

from tasks.habitats.base import Fetcher, RunNeeds
from tasks.habitats.download import DownloadReport, Item
from tasks.habitats.globus_crawl import GlobusCrawler, globus_crawler_for
from tasks.habitats.globus_download import download_globus
from tasks.habitats.globus_offload import offload_by_transfer
from tasks.habitats.globus_search import search_ingest
from tasks.habitats.globus_transfer import StagingConfig, collection_to_host
from tasks.store.layout import MetadataDir, normalized
from xtract_blocks import XtractEndpoint
from xtract_blocks.compute import GlobusComputeSettings
from xtract_blocks.credentials import SEARCH_RS, TRANSFER_RS
from xtract_blocks.errors import ConfigurationError, CredentialsError, DownloadError

DEFAULT_VISIBLE_TO = ["public"]


def needs_staging(ep: XtractEndpoint) -> bool:
    """A collection without a compute endpoint of its own (funcx_ep_id): its bytes must travel to the workers."""
    return not ep.funcx_ep_id


def check_credentials(ep: XtractEndpoint, *, search: bool = False) -> None:
    """Fetch the tokens a run will need, so a bad credential fails before any work."""
    if ep.credentials is None:
        raise ConfigurationError("XtractEndpoint.credentials is not set: Globus crawl, offload and Search need a "
                                 "GlobusCredentials block")
    try:
        ep.credentials.check(TRANSFER_RS, *([SEARCH_RS] if search else []))
    except CredentialsError as exc:
        raise ConfigurationError(str(exc)) from None


def check_globus_destinations(ep: XtractEndpoint, *, dest_endpoint_id: str | None,
                              search_index_id: str | None) -> None:
    """Offload by transfer and Search ingest, whatever the data's habitat: what they need of the block."""
    if not dest_endpoint_id and not search_index_id:
        return
    if ep.credentials is None:
        raise ConfigurationError("XtractEndpoint.credentials is not set: Globus offload and Search need a "
                                 "GlobusCredentials block")
    if dest_endpoint_id and not ep.local_ep_id:
        raise ConfigurationError("XtractEndpoint.local_ep_id is not set: offload by transfer needs the collection "
                                 "exposing this machine")
    check_credentials(ep, search=bool(search_index_id))


class GlobusHabitat:
    repo_type = "globus"
    needs_credentials = True

    def validate(self, ep: XtractEndpoint, needs: RunNeeds) -> None:
        if not ep.dirs:
            raise ConfigurationError("XtractEndpoint.dirs is empty: name at least one directory to crawl")
        if ep.credentials is None:
            raise ConfigurationError("XtractEndpoint.credentials is not set: Globus crawl, offload and Search need "
                                     "a GlobusCredentials block")
        if not ep.globus_ep_id:
            raise ConfigurationError("XtractEndpoint.globus_ep_id is not set: name the collection to crawl")
        if needs.extract and needs_staging(ep):
            if needs.executor == "globus-compute":
                settings = needs.compute_settings or GlobusComputeSettings()
                if not settings.endpoint_id or not settings.collection_id:
                    raise ConfigurationError(
                        "GlobusComputeSettings.endpoint_id and collection_id are not set: the collection has no "
                        "compute endpoint (funcx_ep_id), so its files are staged to a compute endpoint's collection")
            elif not ep.local_ep_id:
                raise ConfigurationError(
                    "XtractEndpoint.local_ep_id is not set: without a compute endpoint (funcx_ep_id) the "
                    "collection's files are staged by transfer to the collection exposing this machine")
        check_credentials(ep)

    def crawler(self, ep: XtractEndpoint) -> GlobusCrawler:
        return globus_crawler_for(ep)

    def staging(self, ep: XtractEndpoint, needs: RunNeeds, out: MetadataDir, *, timeout_s: float) -> Any:
        """None when compute sits next to the data; else one transfer per batch to where workers read."""
        if not needs_staging(ep):
            return None
        assert ep.credentials is not None and ep.globus_ep_id  # checked by validate
        fault_timeout_s = min(600.0, timeout_s)
        if needs.executor == "globus-compute":
            settings: GlobusComputeSettings = needs.compute_settings or GlobusComputeSettings()
            assert settings.collection_id
            workers = max(1, needs.workers or 1)
            return StagingConfig(credentials=ep.credentials, source_ep=ep.globus_ep_id, local_ep=settings.collection_id,
                                 staging_dir=collection_to_host(settings.staging_path, settings.collection_root),
                                 local_ep_root=settings.collection_root, timeout_s=timeout_s,
                                 fault_timeout_s=fault_timeout_s, remote=True, max_bytes=settings.staging_bytes,
                                 max_staged=workers + settings.prefetch)
        assert ep.local_ep_id
        return StagingConfig(credentials=ep.credentials, source_ep=ep.globus_ep_id, local_ep=ep.local_ep_id,
                             staging_dir=normalized(ep.staging_dir) if ep.staging_dir else out.staging,
                             local_ep_root=ep.local_ep_root, timeout_s=timeout_s, fault_timeout_s=fault_timeout_s)

    def fetcher(self, ep: XtractEndpoint, remote: str) -> Fetcher:
        raise DownloadError("Globus paths are fetched by transfer: use download_files(..., endpoint=...)")

    def download(self, ep: XtractEndpoint, items: list[Item], dest: str, **options: Any) -> DownloadReport:
        report = DownloadReport(files=len(items), errors=[])
        return download_globus(items, dest, ep, report, on_file=options.get("on_file"))


def offload_by_globus(ep: XtractEndpoint, sources: dict[str, str], dest_endpoint_id: str, dest_path: str, *,
                      delete_source: bool, timeout_s: float = 3600.0) -> dict[str, Any]:
    assert ep.credentials is not None and ep.local_ep_id  # checked by check_globus_destinations
    return offload_by_transfer(ep.credentials, sources, ep.local_ep_id, dest_endpoint_id, dest_path,
                          local_ep_root=ep.local_ep_root, delete_source=delete_source, timeout_s=timeout_s)


def ingest_to_search(ep: XtractEndpoint, index_id: str, out_dir: str, *,
                     visible_to: list[str] | None) -> dict[str, Any]:
    assert ep.credentials is not None  # checked by check_globus_destinations
    return search_ingest(ep.credentials, index_id, out_dir, ep.globus_ep_id or "local",
                         visible_to=visible_to or DEFAULT_VISIBLE_TO)
