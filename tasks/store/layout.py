"""Every path inside a metadata directory (OUT), named once.

The published contract is ``index.parquet`` and ``groups/<group_id>.json`` (plus
``facts.parquet`` and the optional ``report.html``); everything under ``.xtract/`` is the run's private state:
spools, the resume journal, the search index, staging areas. Nothing else in the
project spells these names, so moving a file of the layout is one edit here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

STATE_DIR = ".xtract"


def normalized(path: str) -> str:
    """The absolute form of a user-given path (``~`` expanded): how every layer names OUT."""
    return os.path.abspath(os.path.expanduser(path))


@dataclass(frozen=True)
class MetadataDir:
    """One metadata directory; ``root`` is absolute."""

    root: str

    @classmethod
    def of(cls, path: str) -> MetadataDir:
        return cls(normalized(path))

    # -- the published contract ---------------------------------------------------
    @property
    def index(self) -> str:
        return os.path.join(self.root, "index.parquet")

    @property
    def facts(self) -> str:
        """One row per metadata leaf (tasks/store/facts.py), a dataset like the index."""
        return os.path.join(self.root, "facts.parquet")

    @property
    def groups(self) -> str:
        return os.path.join(self.root, "groups")

    def group_file(self, group_id: str) -> str:
        return os.path.join(self.groups, f"{group_id}.json")

    @property
    def report(self) -> str:
        return os.path.join(self.root, "report.html")

    #: What an offload copies: the contract, never the private state.
    PUBLISHED: tuple[str, ...] = ("index.parquet", "facts.parquet", "groups")

    # -- private state ---------------------------------------------------------------
    @property
    def state(self) -> str:
        return os.path.join(self.root, STATE_DIR)

    @property
    def journal(self) -> str:
        return os.path.join(self.state, "state.sqlite")

    @property
    def search_index(self) -> str:
        return os.path.join(self.state, "search.sqlite")

    @property
    def crawl_spool(self) -> str:
        return os.path.join(self.state, "crawl.parquet")

    @property
    def groups_spool(self) -> str:
        return os.path.join(self.state, "groups.parquet")

    @property
    def staging(self) -> str:
        """Where a Globus collection's files are staged when this machine extracts them."""
        return os.path.join(self.state, "staging")

    @property
    def fetch_staging(self) -> str:
        """Where https/fsspec files are downloaded for extraction."""
        return os.path.join(self.state, "fetch-staging")

    @property
    def remote_results(self) -> str:
        """Where oversized documents written on a compute endpoint land when transferred home."""
        return os.path.join(self.state, "remote-results")

    @property
    def lock(self) -> str:
        """The state lock: one run at a time writes this metadata directory (tasks/store/state_lock.py)."""
        return os.path.join(self.state, "lock")

    def endpoint(self, key: str) -> EndpointState:
        """The working state of one endpoint (its identity ``key``) in this directory.

        Several endpoints may share one metadata directory (the seed's README does): each
        keeps its spools, crawl id and flush queues apart, so one never overwrites another's.
        """
        if not key or "/" in key or key in (".", ".."):
            raise ValueError(f"not an endpoint key: {key!r}")
        return EndpointState(os.path.join(self.state, "endpoints", key))

    def shard(self, number: int) -> MetadataDir:
        """The metadata directory of one shard of a sharded run (tasks/shards.py), inside this one's state."""
        return MetadataDir(os.path.join(self.state, "shards", f"shard-{number:03d}"))

    def contains(self, path: str) -> bool:
        """Whether ``path`` lies inside this metadata directory (then a crawl must not list it)."""
        target = normalized(path)
        return target == self.root or target.startswith(self.root.rstrip(os.sep) + os.sep)


@dataclass(frozen=True)
class EndpointState:
    """``OUT/.xtract/endpoints/<identity>/``: what one endpoint's runs keep between stages.

    Each crawl keeps its own spools (``crawls/<crawl id>/``), so an extraction reads exactly
    the crawl it was started for, even when another crawl of the endpoint ran in between.
    """

    root: str

    def crawl_dir(self, crawl_id: str) -> str:
        return os.path.join(self.root, "crawls", _safe_id(crawl_id))

    @property
    def crawls(self) -> str:
        return os.path.join(self.root, "crawls")

    def crawl_spool(self, crawl_id: str) -> str:
        return os.path.join(self.crawl_dir(crawl_id), "crawl.parquet")

    def groups_spool(self, crawl_id: str) -> str:
        return os.path.join(self.crawl_dir(crawl_id), "groups.parquet")

    @property
    def crawl_id(self) -> str:
        """A text file naming the endpoint's latest crawl (the one an extraction without a crawl id reads)."""
        return os.path.join(self.root, "crawl-id")

    def flush_queue(self, crawl_id: str) -> str:
        """The flush queue of one crawl (tasks/store/flush_queue.py)."""
        return os.path.join(self.root, f"flush-{_safe_id(crawl_id)}.sqlite")


def _safe_id(crawl_id: str) -> str:
    if not crawl_id or "/" in crawl_id or crawl_id.startswith("."):
        raise ValueError(f"not a crawl id: {crawl_id!r}")
    return crawl_id
