"""Which charts the report shows, built from ``aggregate.summarize`` figures.

Each chart has a stable id (the page's ``figure#chart-<id>``, the artifact key
suffix) and a title; the two headline charts are also published as Prefect
image artifacts by the flow.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flows.report.svg import (
    BLUE,
    TEAL,
    column_chart,
    empty_chart,
    hbar_chart,
    outcome_segments,
    stacked_hbar,
)
from tasks.units import human_bytes, human_count

HEADLINE = ("outcomes-by-extractor", "files-by-type")


def _count(v: float) -> str:
    return human_count(v)


def _bytes(v: float) -> str:
    return human_bytes(v)


def _both(r: dict[str, Any]) -> str:
    return f"{r.get('full', r['label'])}: {human_count(r['files'])} files, {human_bytes(r['bytes'])}"


def size_labels(edges: list[int]) -> list[str]:
    return [human_bytes(e).replace(".0 ", " ") for e in edges[:-1]]


def build_charts(facts: dict[str, Any], group_href: Callable[[str], str]) -> dict[str, tuple[str, str]]:
    """chart id -> (title, svg)."""
    charts: dict[str, tuple[str, str]] = {}

    def add(cid: str, title: str, svg: str) -> None:
        charts[cid] = (title, svg)

    by_type, by_ex = facts["by_type"], facts["by_extractor"]
    by_type_bytes = sorted(by_type, key=lambda r: (bool(r.get("other")), -r["bytes"]))
    by_ex_bytes = sorted(by_ex, key=lambda r: -r["bytes"])
    add("files-by-type", "Files by type (extension)", hbar_chart(by_type, "files", _count, "files by type",
                                                                  tooltip=_both))
    add("bytes-by-type", "Bytes by type (extension)", hbar_chart(by_type_bytes, "bytes", _bytes, "bytes by type",
                                                                  color=TEAL, tooltip=_both))
    add("files-by-extractor", "Files by extractor", hbar_chart(by_ex, "files", _count, "files by extractor",
                                                               tooltip=_both))
    add("bytes-by-extractor", "Bytes by extractor", hbar_chart(by_ex_bytes, "bytes", _bytes, "bytes by extractor",
                                                               color=TEAL, tooltip=_both))

    hist = facts["size_hist"]
    if hist["files"]:
        labels = size_labels(hist["edges"])
        tips = [f"{lo} – {hi}: {human_count(n)} files, {human_bytes(b)}" for lo, hi, n, b in
                zip(labels, size_labels(hist["edges"][1:] + [hist["edges"][-1] * 2]), hist["files"], hist["bytes"],
                    strict=True)]
        svg = column_chart(labels, hist["files"], _count, "file size distribution (log scale)", tips=tips)
    else:
        svg = empty_chart("file size distribution", "no file has a size above zero")
    zero = f"; {human_count(hist['zero'])} empty files not shown" if hist["zero"] else ""
    add("size-distribution", f"File sizes (log scale: each bar doubles the size){zero}", svg)

    tl = facts["timeline"]
    tips = [f"{lab}: {human_count(n)} files, {human_bytes(b)}" for lab, n, b in
            zip(tl["labels"], tl["files"], tl["bytes"], strict=True)]
    add("mtime-timeline", f"Files by modification time (per {tl['unit']})",
        column_chart(tl["labels"], tl["files"], _count, "modification time timeline", tips=tips, color=BLUE))

    status = facts["status"]
    keys = [k for k in ("ok", "error", "unknown", "skipped") if status.get(k)] or ["ok"]
    add("outcomes", "Extraction outcomes (files)",
        stacked_hbar([{"label": "all files", **status}], outcome_segments(keys), _count, "extraction outcomes"))
    add("outcomes-by-extractor", "Outcomes by extractor (files)",
        stacked_hbar(by_ex[:12], outcome_segments(keys), _count, "outcomes by extractor"))
    errors = facts["errors"]
    add("error-types", f"Error types ({human_count(errors['files'])} failed files)",
        hbar_chart(errors["types"], "files", _count, "error types", color="#d64545")
        if errors["types"] else empty_chart("error types", "no extraction errors"))

    root = facts["root"]

    def rel(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Labels relative to the common root (shown in the title), full path kept for the tooltip."""
        base = root.rstrip("/")
        return [{**r, "full": r["label"], "label": (r["label"][len(base):].lstrip("/") or ".") if base and
                 (r["label"] + "/").startswith(base + "/") else r["label"]} for r in rows]

    largest = [{"label": r["path"], "bytes": r["bytes"], "group_id": r["group_id"]} for r in facts["largest"]]
    add("largest-files", f"Largest files (under {root or '/'}; click a bar for its metadata)",
        hbar_chart(rel(largest), "bytes", _bytes, "largest files", color=TEAL, label_w=220, keep_end=True,
                   tooltip=lambda r: f"{r['full']}: {human_bytes(r['bytes'])}",
                   href=lambda r: group_href(r["group_id"])))

    dirs = facts["dirs"]
    add("busiest-dirs", f"Busiest directories by files (of {human_count(dirs['count'])}; under {root or '/'})",
        hbar_chart(rel(dirs["by_files"]), "files", _count, "busiest directories", label_w=220, keep_end=True,
                   tooltip=_both))
    add("biggest-dirs", f"Directories holding the most bytes (under {root or '/'})",
        hbar_chart(rel(dirs["by_bytes"]), "bytes", _bytes, "biggest directories", color=TEAL, label_w=220,
                   keep_end=True, tooltip=_both))
    return charts
