"""Prefect artifact keys: written by the stages, read back by `xtract status` and XtractClient.

A key is ``<endpoint name>-<kind>``; the kinds are the constants below, and
``kind_of`` is the one reader, so writer and readers cannot drift apart.
"""

from __future__ import annotations

import re

PROGRESS = "progress"
CRAWL_STATUS = "crawl-status"
CRAWL_ERRORS = "crawl-errors"
CONTAINERS = "containers"
COMPUTE_FUNCTIONS = "compute-functions"
XTRACT_COUNTERS = "xtract-counters"
SUMMARY = "summary"
REPORT = "report"
CHART = "chart"  # followed by the chart's name

KINDS = (PROGRESS, CRAWL_STATUS, CRAWL_ERRORS, CONTAINERS, COMPUTE_FUNCTIONS, XTRACT_COUNTERS, SUMMARY, REPORT)


def artifact_key(*parts: str) -> str:
    """A Prefect-legal key (lower case, digits, dashes; at most 100 characters)."""
    key = re.sub(r"[^a-z0-9-]+", "-", "-".join(parts).lower()).strip("-")
    return re.sub(r"-{2,}", "-", key)[:100] or "xtract"


def kind_of(key: str | None) -> str | None:
    """Which of the kinds above an artifact key is (None for keys this project did not write)."""
    key = key or ""
    if re.search(rf"-{CHART}-[a-z0-9-]+$", key):
        return CHART
    return next((kind for kind in KINDS if key == kind or key.endswith("-" + kind)), None)
