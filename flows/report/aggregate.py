"""The report's figures: everything is aggregated here, so the page holds summaries, never the index.

``index.parquet`` is read once, column by column (pyarrow), and reduced with
vectorised pandas/numpy/pyarrow operations; a million rows take seconds. Only
the handful of group documents behind the top error messages are opened. The
result is plain JSON-able data, so charts, the page and tests share one source.
"""

from __future__ import annotations

import json
import os
import re
import time
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from tasks.store import dataset
from xtract_blocks.errors import MetadataDirError

COLUMNS = ["path", "size", "mtime", "extension", "extractor", "group_id", "status", "error"]
STATUSES = ("ok", "error", "unknown", "skipped")
TOP = 15
_DIGITS = re.compile(r"\d+")


class ReportError(MetadataDirError):
    """The metadata directory cannot be reported on (names what is missing)."""


def read_index(out_dir: str) -> pa.Table:
    path = os.path.join(out_dir, "index.parquet")
    files = dataset.data_files(path) if dataset.exists(path) else []  # a file, or a dataset of parts
    if not files:
        raise ReportError(f"no index.parquet in {out_dir}: run `xtract run ... --metadata-dir {out_dir}` first")
    schema = pq.read_schema(files[0])
    missing = [c for c in COLUMNS if c not in schema.names]
    if missing:
        raise ReportError(f"{path} lacks columns {missing}: not an xtract metadata index")
    return dataset.read_table(path, columns=COLUMNS)


def encode(column: pa.ChunkedArray, null_label: str) -> tuple[np.ndarray, list[str]]:
    """Integer codes and their labels (dictionary encoding in pyarrow: no per-row Python objects)."""
    enc = pc.fill_null(column, null_label).combine_chunks().dictionary_encode()
    return enc.indices.to_numpy(zero_copy_only=False).astype(np.int64), [str(v) for v in enc.dictionary.to_pylist()]


def ranked(codes: np.ndarray, labels: list[str], sizes: np.ndarray, top: int, other: str) -> list[dict[str, Any]]:
    """Files and bytes per label, most files first; the tail folded into one ``other`` row."""
    files = np.bincount(codes, minlength=len(labels))
    size = np.bincount(codes, weights=sizes, minlength=len(labels))
    order = sorted(range(len(labels)), key=lambda i: (-files[i], labels[i]))
    order = [i for i in order if files[i]]
    rows = [{"label": labels[i], "files": int(files[i]), "bytes": int(size[i])} for i in order[:top]]
    rest = order[top:]
    if rest:
        rows.append({"label": f"{other} ({len(rest):,})", "files": int(files[rest].sum()),
                     "bytes": int(size[rest].sum()), "other": True})
    return rows


def by_extractor(ex: tuple[np.ndarray, list[str]], st: tuple[np.ndarray, list[str]],
                 sizes: np.ndarray) -> list[dict[str, Any]]:
    """Files, bytes and outcome counts per extractor, busiest first."""
    (ex_codes, ex_labels), (st_codes, st_labels) = ex, st
    rows = ranked(ex_codes, ex_labels, sizes, top=len(ex_labels), other="")
    grid = np.bincount(ex_codes * len(st_labels) + st_codes,
                       minlength=len(ex_labels) * len(st_labels)).reshape(len(ex_labels), len(st_labels))
    for row in rows:
        i = ex_labels.index(row["label"])
        row.update({s: int(grid[i, st_labels.index(s)]) if s in st_labels else 0 for s in STATUSES})
    return rows


def size_histogram(sizes: np.ndarray) -> dict[str, Any]:
    """Power-of-two size classes (a log axis): files and bytes per class, zero-byte files apart."""
    positive = sizes[sizes > 0]
    zero = int((sizes == 0).sum())
    if not len(positive):
        return {"edges": [], "files": [], "bytes": [], "zero": zero}
    k = np.floor(np.log2(positive)).astype(int)
    lo, hi = int(k.min()), int(k.max())
    files = np.bincount(k - lo, minlength=hi - lo + 1)
    size = np.bincount(k - lo, weights=positive, minlength=hi - lo + 1)
    return {"edges": [2**e for e in range(lo, hi + 2)], "files": files.tolist(),
            "bytes": [int(b) for b in size], "zero": zero}


def _unit_for(span_s: float) -> tuple[str, str]:
    if span_s <= 2 * 86400:
        return "hour", "h"
    if span_s <= 120 * 86400:
        return "day", "D"
    if span_s <= 12 * 365 * 86400:
        return "month", "M"
    return "year", "Y"


def mtime_timeline(mtimes: np.ndarray, sizes: np.ndarray) -> dict[str, Any]:
    """Files and bytes per hour, day, month or year (whichever fits the span), gaps kept as zeros."""
    ok = np.isfinite(mtimes)
    if not ok.any():
        return {"unit": "day", "labels": [], "files": [], "bytes": []}
    m, s = mtimes[ok], sizes[ok]
    unit, code = _unit_for(float(m.max() - m.min()))
    stamps = (m * 1e6).astype("int64").astype("datetime64[us]").astype(f"datetime64[{code}]")
    first, last = stamps.min(), stamps.max()
    idx = (stamps - first).astype(int)
    n = int((last - first).astype(int)) + 1
    files = np.bincount(idx, minlength=n)
    size = np.bincount(idx, weights=s, minlength=n)
    fmt = {"hour": "%Y-%m-%d %H:00", "day": "%Y-%m-%d", "month": "%Y-%m", "year": "%Y"}[unit]
    periods = first + np.arange(n)
    labels = [pd.Timestamp(p.astype("datetime64[s]")).strftime(fmt) for p in periods]
    return {"unit": unit, "labels": labels, "files": files.tolist(), "bytes": [int(b) for b in size],
            "first": float(m.min()), "last": float(m.max())}


def _error_key(path: str, message: str) -> str:
    """Messages that differ only in the file's name or in numbers count as one."""
    text = message.replace(path, "<file>").replace(os.path.basename(path), "<file>")
    return _DIGITS.sub("N", text.splitlines()[0] if text else "")[:300]


def error_summary(errs: pd.DataFrame, out_dir: str, top: int = 10) -> dict[str, Any]:
    """Error types and the most frequent messages, each with an example file and its group document.

    ``errs`` holds only the failed files' rows (path, error, group_id, extractor).
    """
    if errs.empty:
        return {"files": 0, "types": [], "top": []}
    messages = errs["error"].fillna("").astype(str)
    types = messages.str.split(":", n=1).str[0].str.strip().replace("", "(no message)")
    keys = [_error_key(p, m) for p, m in zip(errs["path"], messages, strict=True)]
    frame = pd.DataFrame({"key": keys, "path": errs["path"].to_numpy(), "message": messages.to_numpy(),
                          "group_id": errs["group_id"].to_numpy(), "extractor": errs["extractor"].to_numpy()})
    counts = frame.groupby("key", sort=False).agg(files=("path", "size"), path=("path", "first"),
                                                  message=("message", "first"), group_id=("group_id", "first"),
                                                  extractor=("extractor", "first"))
    counts = counts.sort_values(["files", "message"], ascending=[False, True]).head(top)
    rows = []
    for key, r in counts.iterrows():
        detail = _group_error(out_dir, str(r["group_id"]), str(r["path"]))
        rows.append({"key": str(key), "files": int(r["files"]), "message": str(r["message"])[:500],
                     "example": str(r["path"]), "group_id": str(r["group_id"]),
                     "extractor": detail.get("extractor") or (None if pd.isna(r["extractor"]) else str(r["extractor"])),
                     "type": detail.get("type") or str(r["message"]).split(":", 1)[0]})
    type_rows = types.value_counts().head(TOP)
    return {"files": int(len(errs)), "types": [{"label": str(k), "files": int(v)} for k, v in type_rows.items()],
            "top": rows}


def _group_error(out_dir: str, group_id: str, path: str) -> dict[str, Any]:
    """The error record of ``path`` in its group document (type, extractor), when the file is readable."""
    try:
        with open(os.path.join(out_dir, "groups", f"{group_id}.json"), encoding="utf-8") as fh:
            doc = json.load(fh)
    except (OSError, ValueError):
        return {}
    for err in doc.get("errors") or []:
        if isinstance(err, dict) and err.get("path") == path:
            return err
    return {}


def busiest_dirs(paths: pa.ChunkedArray, sizes: np.ndarray, top: int = TOP) -> dict[str, Any]:
    """Directories holding the most files (and the most bytes), by their direct files."""
    dirs = pc.replace_substring_regex(paths, pattern=r"/[^/]*$", replacement="")
    grouped = pa.table({"dir": dirs, "size": pa.array(sizes)}).group_by("dir").aggregate(
        [("size", "count"), ("size", "sum")]).to_pandas().rename(columns={"size_count": "files", "size_sum": "bytes"})

    def as_rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
        return [{"label": str(r.dir) or "/", "files": int(r.files), "bytes": int(r.bytes)} for r in frame.itertuples()]

    by_files = grouped.sort_values(["files", "dir"], ascending=[False, True]).head(top)
    by_bytes = grouped.sort_values(["bytes", "dir"], ascending=[False, True]).head(top)
    return {"count": int(len(grouped)), "by_files": as_rows(by_files), "by_bytes": as_rows(by_bytes)}


def common_root(paths: pa.ChunkedArray) -> str:
    """The deepest directory every path is under (the smallest and largest path bound all others)."""
    if len(paths) == 0:
        return ""
    lo, hi = pc.min_max(paths).values()
    prefix = os.path.commonprefix([lo.as_py(), hi.as_py()])
    return prefix[: prefix.rfind("/") + 1] if "/" in prefix else ""


def pick_rows(table: pa.Table, sizes: np.ndarray, failed: np.ndarray, max_rows: int) -> tuple[np.ndarray, str]:
    """Row numbers for the page's table: all when they fit; else the failures (up to half), then the largest."""
    n = len(sizes)
    if n <= max_rows:
        return pc.sort_indices(table["path"]).to_numpy(), f"all {n:,} files"
    err_idx = np.flatnonzero(failed)
    if len(err_idx) > max_rows // 2:
        err_paths = table["path"].take(pa.array(err_idx))
        err_idx = err_idx[pc.sort_indices(err_paths).to_numpy()[: max_rows // 2]]
    rest = max_rows - len(err_idx)
    ranked_sizes = np.where(failed, -1.0, sizes)
    big = np.argpartition(-ranked_sizes, rest)[:rest]
    big = big[np.argsort(-ranked_sizes[big], kind="stable")]
    note = (f"{max_rows:,} of {n:,} files: the {len(err_idx):,} failed ones first, then the {rest:,} largest "
            "(the full list is index.parquet)")
    return np.concatenate([err_idx, big]), note


def table_rows(table: pa.Table, idx: np.ndarray) -> list[list[Any]]:
    """[path, size, mtime, extension, extractor, status, error, group_id] for the chosen rows."""
    cols = table.take(pa.array(idx, type=pa.int64())).to_pydict()
    return [[p, s, m, e, x, st, (err or "")[:300] or None, g] for p, s, m, e, x, st, err, g in zip(
        cols["path"], cols["size"], cols["mtime"], cols["extension"], cols["extractor"], cols["status"],
        cols["error"], cols["group_id"], strict=True)]


def summarize(out_dir: str, *, max_rows: int = 5000) -> dict[str, Any]:
    """Every figure the report shows, as plain data."""
    started = time.perf_counter()
    table = read_index(out_dir)
    sizes = np.nan_to_num(table["size"].to_numpy(zero_copy_only=False).astype("float64"), nan=0.0)
    mtimes = table["mtime"].to_numpy(zero_copy_only=False).astype("float64")
    st = encode(table["status"], "unknown")
    ex = encode(table["extractor"], "none")
    ext = encode(pc.utf8_lower(table["extension"]), "")
    ext = (ext[0], [label or "(none)" for label in ext[1]])
    status_counts = np.bincount(st[0], minlength=len(st[1]))
    failed = st[0] == st[1].index("error") if "error" in st[1] else np.zeros(len(sizes), dtype=bool)
    errs = table.filter(pa.array(failed)).select(["path", "error", "group_id", "extractor"]).to_pandas()
    idx, note = pick_rows(table, sizes, failed, max_rows)
    top = np.argsort(-sizes, kind="stable")[:TOP] if len(sizes) <= TOP else np.argpartition(-sizes, TOP)[:TOP]
    top = top[np.argsort(-sizes[top], kind="stable")]
    facts: dict[str, Any] = {
        "out_dir": os.path.abspath(out_dir),
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "files": int(len(sizes)),
        "bytes": int(sizes.sum()),
        "groups": int(pc.count_distinct(table["group_id"]).as_py()) if len(sizes) else 0,
        "status": {s: int(status_counts[st[1].index(s)]) if s in st[1] else 0 for s in STATUSES},
        "root": common_root(table["path"]),
        "by_type": ranked(*ext, sizes, TOP, "other types"),
        "by_extractor": by_extractor(ex, st, sizes),
        "size_hist": size_histogram(sizes),
        "timeline": mtime_timeline(mtimes, sizes),
        "errors": error_summary(errs, out_dir),
        "largest": [{"path": r[0], "bytes": r[1], "extractor": r[4], "status": r[5], "group_id": r[7]}
                    for r in table_rows(table, top)],
        "dirs": busiest_dirs(table["path"], sizes),
        "table": {"note": note, "rows": table_rows(table, idx)},
    }
    facts["seconds"] = round(time.perf_counter() - started, 3)
    return facts
