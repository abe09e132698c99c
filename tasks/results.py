"""What the stages hand each other and what a run returns: small dataclasses, never file lists.

(The crawl stage returns the habitat's own ``tasks.habitats.base.CrawlStatus``.)

``RunSummary.as_dict`` is the one serializer of a run's result: the flow's return value,
the CLI's ``--json`` line and the summary artifact all come from it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Grouped:
    groups: int = 0
    files: int = 0
    #: files per provisional extractor ("auto": decided from content at extraction time)
    by_extractor: dict[str, int] = field(default_factory=dict)


@dataclass
class Sunk:
    index_rows: int = 0
    groups_removed: int = 0
    #: files per status (ok, error, unknown, skipped) in this run's index
    counts: dict[str, int] = field(default_factory=dict)
    by_extractor: dict[str, dict[str, int]] = field(default_factory=dict)


@dataclass
class RunSummary:
    """One endpoint's run, as users see it (counts are files)."""

    endpoint: str
    metadata_dir: str
    flow_run_id: str
    stage: str = "all"
    files_crawled: int = 0
    bytes_crawled: int = 0
    dirs_failed: int = 0
    files_excluded: int = 0  # skipped by exclude globs, or lying in the metadata directory
    groups: int = 0
    extracted: int = 0
    failed: int = 0
    unknown: int = 0
    skipped: int = 0
    xtract_counters: dict[str, Any] = field(default_factory=dict)
    report: str | None = None
    search: dict[str, Any] | None = None
    offload_path: str | None = None
    seconds: float = 0.0
    stage_seconds: dict[str, float] = field(default_factory=dict)

    def message(self) -> str:
        if self.stage == "crawl":
            return f"crawled {self.files_crawled} files ({self.bytes_crawled} bytes) in {self.groups} groups"
        return (f"{self.files_crawled} files in {self.groups} groups: {self.extracted} extracted, "
                f"{self.failed} failed, {self.unknown} unknown, {self.skipped} skipped")

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if self.stage == "crawl":  # the seed's crawl(): no extraction figures
            keep = ("endpoint", "stage", "files_crawled", "bytes_crawled", "dirs_failed", "files_excluded", "groups",
                    "metadata_dir", "flow_run_id")
            return {k: data[k] for k in keep}
        for optional in ("search", "offload_path"):
            if data[optional] is None:
                del data[optional]
        del data["stage"]
        return data
