"""repo_type 'local': directories of this machine, read in place by local workers."""

from __future__ import annotations

import os
from typing import Any

from tasks.habitats.base import FetchingHabitat, RunNeeds
from tasks.habitats.local_crawl import LocalCrawler
from tasks.store.layout import MetadataDir
from xtract_blocks import XtractEndpoint
from xtract_blocks.errors import ConfigurationError


class LocalHabitat(FetchingHabitat):
    repo_type = "local"

    def validate(self, ep: XtractEndpoint, needs: RunNeeds) -> None:
        if not ep.dirs:
            raise ConfigurationError("XtractEndpoint.dirs is empty: name at least one directory to crawl")
        missing = [d for d in ep.dirs if not os.path.exists(os.path.expanduser(d))]
        if missing:
            raise ConfigurationError(f"path does not exist: {missing[0]}")

    def crawler(self, ep: XtractEndpoint) -> LocalCrawler:
        return LocalCrawler(ep.globus_ep_id or "local", follow_symlinks=ep.follow_symlinks)

    def staging(self, ep: XtractEndpoint, needs: RunNeeds, out: MetadataDir, *, timeout_s: float) -> Any:
        return None  # local workers read the files where they are
