"""The flow's report step: write OUT/report.html, publish its link and headline charts.

Best-effort like every status artifact: a report that cannot be built is a
warning in the run's log, never a failed extraction.
"""

from __future__ import annotations

from prefect import get_run_logger

from flows.report import build_report
from tasks.status import publish_report


def publish_run_report(slug: str, out_dir: str) -> str | None:
    """Build the report of ``out_dir`` and publish it as artifacts; returns its path (None when it failed)."""
    logger = get_run_logger()
    try:
        report = build_report(out_dir)
    except Exception as exc:  # noqa: BLE001 - the report is a view of the run, not part of it
        logger.warning("could not build the report of %s: %s: %s", out_dir, type(exc).__name__, exc)
        return None
    publish_report(slug, report.path, report.headline)
    logger.info("report: %s (%d files, %d table rows, %.1f KB, %.2fs)", report.path, report.files,
                report.table_rows, report.bytes_written / 1024, report.seconds)
    return report.path
