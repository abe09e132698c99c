"""What every habitat (a kind of repository: repo_type) provides, and what a crawl reports.

A habitat is the only code that knows where an endpoint's files live: it checks an
endpoint before any work, crawls it, brings its bytes to where extraction runs
(staging or fetching, when the workers cannot read them in place), downloads files
for users, and offloads metadata to it. The stages and the pool planner ask the
registry (``tasks.habitats.habitat_for``) and never compare repo_type themselves.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from extractors.fspath import to_text
from tasks.habitats.download import DownloadReport, FetchStagingConfig, Item, fetch_many, scheme_fetcher
from tasks.store.layout import MetadataDir, normalized
from tasks.store.records import FileRecord
from xtract_blocks import XtractEndpoint

MAX_RECORDED_ERRORS = 1000


@dataclass
class CrawlStatus:
    """What a crawl found and what it could not read."""

    files: int = 0
    bytes: int = 0
    dirs: int = 0
    dirs_failed: int = 0
    symlinks_skipped: int = 0
    dirs_pending: int = 0  # listed but not yet walked: progress displays show it
    excluded: int = 0  # files skipped by exclude globs or because they lie in the metadata directory
    errors: list[dict[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    def add_error(self, path: str, exc: BaseException | str) -> None:
        self.dirs_failed += 1
        if len(self.errors) < MAX_RECORDED_ERRORS:
            message = exc if isinstance(exc, str) else f"{type(exc).__name__}: {getattr(exc, 'strerror', None) or exc}"
            self.errors.append({"path": to_text(path), "error": to_text(str(message))})


class Crawler(Protocol):
    """Anything that streams FileRecords of an endpoint, one directory's files together."""

    status: CrawlStatus

    def iter_batches(self, dirs: list[str], *, batch_size: int) -> Iterator[list[FileRecord]]: ...


@dataclass(frozen=True)
class RunNeeds:
    """What a run will ask of the endpoint's habitat, so ``validate`` checks exactly that."""

    extract: bool = True
    executor: str = "local"
    workers: int | None = None
    compute_settings: Any = None  # xtract_blocks.compute.GlobusComputeSettings


class Fetcher(Protocol):
    """Copies one remote file to a local path (resumable where the source allows)."""

    def fetch(self, path: str, local: str, *, mtime: float | None = None,
              on_bytes: Callable[[int], None] | None = None) -> Any: ...


class Habitat(Protocol):
    """One repo_type. Registered in ``tasks.habitats.HABITATS`` or through the ``xtract.habitats`` entry point."""

    repo_type: str
    #: whether the endpoint cannot even be crawled without GlobusCredentials
    needs_credentials: bool

    def validate(self, ep: XtractEndpoint, needs: RunNeeds) -> None:
        """Raise ConfigurationError naming the field at fault; fetch tokens so a bad credential fails here."""

    def crawler(self, ep: XtractEndpoint) -> Crawler:
        """A crawler over ``ep.dirs``."""

    def staging(self, ep: XtractEndpoint, needs: RunNeeds, out: MetadataDir, *, timeout_s: float) -> Any:
        """How each batch's bytes reach the workers: None when they read the files in place, else a
        staging config whose ``pool_kind`` names the pool wrapper that stages (tasks.pools)."""

    def fetcher(self, ep: XtractEndpoint, remote: str) -> Fetcher:
        """A fetcher for one of this habitat's files (downloads, fetch staging)."""

    def download(self, ep: XtractEndpoint, items: list[Item], dest: str, **options: Any) -> DownloadReport:
        """Copy files of this habitat to the local directory ``dest`` (``xtract download``)."""


class FetchingHabitat:
    """Shared behaviour of habitats whose files are fetched one by one (everything but bulk transfer)."""

    repo_type = ""
    needs_credentials = False

    def fetcher(self, ep: XtractEndpoint, remote: str) -> Fetcher:
        return scheme_fetcher(remote)

    def download(self, ep: XtractEndpoint, items: list[Item], dest: str, **options: Any) -> DownloadReport:
        return fetch_many(items, dest, lambda remote: self.fetcher(ep, remote), **options)

    def fetch_staging(self, ep: XtractEndpoint, out: MetadataDir) -> FetchStagingConfig:
        """Each batch downloaded to a staging directory, extracted there, then deleted."""
        staging = normalized(ep.staging_dir) if ep.staging_dir else out.fetch_staging
        return FetchStagingConfig(habitat=self.repo_type, staging_dir=staging,
                                  fetcher_for=lambda remote: self.fetcher(ep, remote))
