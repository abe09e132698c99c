"""repo_type 'https': web-server directory listings or file lists; files fetched before extraction."""

from __future__ import annotations

from typing import Any

from tasks.habitats.base import Fetcher, FetchingHabitat, RunNeeds
from tasks.habitats.download import HttpFetcher
from tasks.habitats.https_crawl import HttpCrawler, http_crawler_for
from tasks.store.layout import MetadataDir
from xtract_blocks import XtractEndpoint
from xtract_blocks.errors import ConfigurationError


class HttpsHabitat(FetchingHabitat):
    repo_type = "https"

    def validate(self, ep: XtractEndpoint, needs: RunNeeds) -> None:
        if not ep.dirs and not ep.file_lists:
            raise ConfigurationError("XtractEndpoint.dirs is empty: name at least one URL (or a file_lists URL)")

    def crawler(self, ep: XtractEndpoint) -> HttpCrawler:
        return http_crawler_for(ep)

    def fetcher(self, ep: XtractEndpoint, remote: str) -> Fetcher:
        return HttpFetcher(ep.http)

    def staging(self, ep: XtractEndpoint, needs: RunNeeds, out: MetadataDir, *, timeout_s: float) -> Any:
        return self.fetch_staging(ep, out)
