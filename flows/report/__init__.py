"""The run report: one self-contained HTML page about a metadata directory.

``build_report(OUT)`` reads ``OUT/index.parquet`` (and the few group documents
behind the top errors), aggregates it (``aggregate``), draws SVG charts
(``charts``/``svg``) and writes the page (``html``) atomically, by default to
``OUT/report.html``. Prefect-free: ``xtract report`` runs it without a server, and
the flow calls it at the end of each run (``flows.report.publish``).
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass

from flows.report.aggregate import ReportError, summarize
from flows.report.charts import HEADLINE, build_charts
from flows.report.html import render_page

__all__ = ["Report", "ReportError", "build_report"]

DEFAULT_NAME = "report.html"


@dataclass
class Report:
    """Where the page went and what it holds (the headline SVGs are reused as artifacts)."""

    path: str
    files: int
    table_rows: int
    bytes_written: int
    seconds: float
    headline: dict[str, str]


def _groups_href(out_dir: str, html_path: str) -> str:
    """Relative link from the page to OUT/groups, so the pair can be moved or offloaded together."""
    rel = os.path.relpath(os.path.join(out_dir, "groups"), os.path.dirname(html_path))
    return rel.replace(os.sep, "/")


def build_report(out_dir: str, html_path: str | None = None, *, max_rows: int = 5000) -> Report:
    """Write the HTML report of ``out_dir``; returns where and how big."""
    started = time.perf_counter()
    out_dir = os.path.abspath(out_dir)
    html_path = os.path.abspath(html_path or os.path.join(out_dir, DEFAULT_NAME))
    facts = summarize(out_dir, max_rows=max_rows)
    href = _groups_href(out_dir, html_path)
    charts = build_charts(facts, lambda gid: f"{href}/{gid}.json")
    page = render_page(facts, charts, href).encode("utf-8")
    os.makedirs(os.path.dirname(html_path), exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".report-", suffix=".html", dir=os.path.dirname(html_path))
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(page)
        os.chmod(tmp, 0o644)
        os.replace(tmp, html_path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return Report(path=html_path, files=facts["files"], table_rows=len(facts["table"]["rows"]),
                  bytes_written=len(page), seconds=round(time.perf_counter() - started, 3),
                  headline={cid: charts[cid][1] for cid in HEADLINE})
