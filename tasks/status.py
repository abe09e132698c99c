"""Status as Prefect artifacts: a live progress bar, counter tables and a summary.

Artifact keys must be lowercase letters, digits and dashes; ``artifact_key``
makes any endpoint name safe. Artifacts are best-effort: a failure to publish
status is logged and never fails the extraction.
"""

from __future__ import annotations

import re
import time
from typing import Any

from prefect import get_run_logger
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)

from tasks.counters import XtractCounters


def artifact_key(*parts: str) -> str:
    key = re.sub(r"[^a-z0-9-]+", "-", "-".join(parts).lower()).strip("-")
    return re.sub(r"-{2,}", "-", key)[:100] or "xtract"


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PB"


def publish_safely(fn: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return fn(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - status must never fail the run
        get_run_logger().warning("could not publish artifact: %s", exc)
        return None


class ProgressReporter:
    """Moves the progress artifact and republishes the counter table while a run goes on."""

    def __init__(self, slug: str, total_groups: int, *, table_every_s: float = 15.0) -> None:
        self.slug = slug
        self.total = max(total_groups, 1)
        self.table_every_s = table_every_s
        self._last_table = 0.0
        self.artifact_id = publish_safely(
            create_progress_artifact, progress=0.0, key=artifact_key(slug, "progress"),
            description=f"Groups extracted or skipped of {total_groups} for {slug}",
        )

    def __call__(self, counters: XtractCounters) -> None:
        pct = min(100.0, 100.0 * counters.groups_done / self.total)
        if self.artifact_id is not None:
            publish_safely(update_progress_artifact, artifact_id=self.artifact_id, progress=pct)
        now = time.monotonic()
        if now - self._last_table >= self.table_every_s:
            self._last_table = now
            publish_counters(self.slug, counters)


def publish_counters(slug: str, counters: XtractCounters) -> None:
    seed = counters.seed_view()
    rows = [{"counter": k, "value": v} for k, v in seed.items() if k != "fx"]
    rows += [{"counter": f"fx.{k}", "value": v} for k, v in seed["fx"].items()]
    rows += [{"counter": k, "value": getattr(counters, k)}
             for k in ("groups_skipped", "files_ok", "files_error", "files_unknown", "files_skipped", "retries",
                       "pool_restarts")]
    publish_safely(create_table_artifact, table=rows, key=artifact_key(slug, "xtract-counters"),
          description=f"Xtract counters for {slug}")


def publish_crawl_status(slug: str, crawl_id: str, crawl: dict[str, Any], groups: int) -> None:
    failed = crawl.get("dirs_failed", 0)
    message = "OK" if not failed else f"{failed} directories could not be listed"
    rows = [{
        "crawl_id": crawl_id,
        "status": "complete",
        "message": message,
        "files_crawled": crawl["files"],
        "bytes_crawled": crawl["bytes"],
        "size": human_bytes(crawl["bytes"]),
        "groups_crawled": groups,
        "dirs": crawl.get("dirs", 0),
        "seconds": round(crawl.get("seconds", 0.0), 2),
    }]
    publish_safely(create_table_artifact, table=rows, key=artifact_key(slug, "crawl-status"),
          description=f"Crawl status for {slug}")
    if crawl.get("errors"):
        errs = sorted(crawl["errors"], key=lambda e: e["path"])
        shown = errs[:50]
        if len(errs) > len(shown):
            shown.append({"path": f"... and {len(errs) - len(shown)} more", "error": ""})
        publish_safely(create_table_artifact, table=shown, key=artifact_key(slug, "crawl-errors"),
              description=f"Directories of {slug} that could not be listed")


def publish_summary(slug: str, summary: dict[str, Any], by_extractor: dict[str, dict[str, int]]) -> None:
    lines = [
        f"# Xtract summary: {slug}",
        "",
        f"- metadata directory: `{summary['metadata_dir']}`",
        f"- files crawled: **{summary['files_crawled']}** ({human_bytes(summary['bytes_crawled'])}) "
        f"in {summary['groups']} groups",
        f"- extracted: **{summary['extracted']}**, failed: **{summary['failed']}**, "
        f"unknown type: **{summary['unknown']}**, skipped (done earlier): **{summary['skipped']}**",
        f"- wall time: {summary['seconds']:.1f} s",
        "",
        "| extractor | ok | error | unknown | skipped | total |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, c in sorted(by_extractor.items(), key=lambda kv: -sum(kv[1].values())):
        lines.append(f"| {name} | {c.get('ok', 0)} | {c.get('error', 0)} | {c.get('unknown', 0)} | "
                     f"{c.get('skipped', 0)} | {sum(c.values())} |")
    publish_safely(create_markdown_artifact, markdown="\n".join(lines), key=artifact_key(slug, "summary"),
          description=f"Xtract summary for {slug}")
