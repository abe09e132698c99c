"""repo_type 'fsspec': any fsspec filesystem (S3, GCS, ...); files fetched before extraction."""

from __future__ import annotations

from typing import Any

from tasks.habitats.base import Fetcher, FetchingHabitat, RunNeeds
from tasks.habitats.download import FsspecFetcher
from tasks.habitats.fsspec_crawl import FsspecCrawler, fsspec_crawler_for
from tasks.store.layout import MetadataDir
from xtract_blocks import XtractEndpoint
from xtract_blocks.errors import ConfigurationError


class FsspecHabitat(FetchingHabitat):
    repo_type = "fsspec"

    def validate(self, ep: XtractEndpoint, needs: RunNeeds) -> None:
        if not ep.dirs:
            raise ConfigurationError("XtractEndpoint.dirs is empty: name at least one path of the filesystem")
        if ep.filesystem is None:
            raise ConfigurationError("repo_type 'fsspec' needs XtractEndpoint.filesystem (an FsspecFilesystem block)")

    def crawler(self, ep: XtractEndpoint) -> FsspecCrawler:
        return fsspec_crawler_for(ep)

    def fetcher(self, ep: XtractEndpoint, remote: str) -> Fetcher:
        if ep.filesystem is None:
            raise ConfigurationError("repo_type 'fsspec' needs XtractEndpoint.filesystem (an FsspecFilesystem block)")
        return FsspecFetcher(ep.filesystem.filesystem())

    def staging(self, ep: XtractEndpoint, needs: RunNeeds, out: MetadataDir, *, timeout_s: float) -> Any:
        return self.fetch_staging(ep, out)
