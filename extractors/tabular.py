"""Tables (csv, tsv, delimited text): layout sniffed on a sample, stats over every row.

The delimiter and header are detected on the first few KB so the C parser can read
the whole file in chunks: memory stays bounded on multi-GB files, and the mean is
exact because sums and counts (not chunk means) are accumulated.
"""

from __future__ import annotations

import csv
import math
from typing import Any

from extractors.base import Extractor, ExtractorError

NAME = "tabular"
VERSION = "1.0"
SAMPLE_BYTES = 64 * 1024
CHUNK_ROWS = 200_000
TOP_VALUES = 5


def _sniff(sample: str) -> tuple[str, int, bool]:
    """(delimiter, preamble lines, has_header) from a text sample."""
    lines = sample.splitlines()
    if len(lines) > 1 and not sample.endswith("\n"):
        lines = lines[:-1]  # the sample may cut the last line
    best: tuple[int, str, int] | None = None
    for delim in (",", "\t", ";", "|", " "):
        counts = [ln.count(delim) for ln in lines]
        for start in range(min(len(lines), 20)):
            tail = counts[start:]
            if len(tail) >= 1 and tail[0] > 0 and all(c == tail[0] for c in tail):
                score = (len(tail) * tail[0], delim, start)
                if best is None or score[0] > best[0]:
                    best = score
                break
    if best is None:
        raise ExtractorError("no consistent delimiter found in the first lines")
    _, delim, preamble = best
    body = "\n".join(lines[preamble : preamble + 50])
    try:
        has_header = csv.Sniffer().has_header(body)
    except csv.Error:
        has_header = not any(_is_number(c) for c in lines[preamble].split(delim))
    return delim, preamble, has_header


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def extract_tabular(path: str) -> dict[str, Any]:
    import pandas as pd

    with open(path, "rb") as fh:
        raw = fh.read(SAMPLE_BYTES)
    if not raw.strip():
        raise ExtractorError("empty table")
    sample = raw.decode("utf-8", errors="replace")
    delim, preamble, has_header = _sniff(sample)
    reader = pd.read_csv(
        path,
        sep=r"\s+" if delim == " " else delim,
        skiprows=preamble,
        header=0 if has_header else None,
        chunksize=CHUNK_ROWS,
        encoding_errors="replace",
        low_memory=True,
    )
    rows = 0
    stats: dict[str, dict[str, Any]] = {}
    for chunk in reader:
        rows += len(chunk)
        for col in chunk.columns:
            s = chunk[col]
            st = stats.setdefault(str(col), {"nulls": 0, "kinds": set(), "n": 0, "sum": 0.0, "sumsq": 0.0,
                                             "min": None, "max": None, "counts": {}})
            st["nulls"] += int(s.isna().sum())
            st["kinds"].add(str(s.dtype))
            if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
                v = s.dropna().astype("float64")
                if len(v):
                    st["n"] += len(v)
                    st["sum"] += float(v.sum())
                    st["sumsq"] += float((v * v).sum())
                    lo, hi = float(v.min()), float(v.max())
                    st["min"] = lo if st["min"] is None else min(st["min"], lo)
                    st["max"] = hi if st["max"] is None else max(st["max"], hi)
            else:
                for value, count in s.dropna().astype(str).value_counts().head(50).items():
                    st["counts"][value] = st["counts"].get(value, 0) + int(count)
    columns = []
    for name, st in stats.items():
        kinds = st["kinds"]
        numeric = all(k.startswith(("int", "float", "Int", "Float")) for k in kinds)
        col: dict[str, Any] = {"name": name, "dtype": kinds.pop() if len(kinds) == 1 else "object",
                               "nulls": st["nulls"]}
        if numeric and st["n"]:
            mean = st["sum"] / st["n"]
            var = max(st["sumsq"] / st["n"] - mean * mean, 0.0) * st["n"] / max(st["n"] - 1, 1)
            col.update(min=st["min"], max=st["max"], mean=mean, std=math.sqrt(var))
        elif not numeric:
            top = sorted(st["counts"].items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_VALUES]
            col["top_values"] = [{"value": v, "count": c} for v, c in top]
        columns.append(col)
    return {
        "delimiter": delim,
        "header": has_header,
        "preamble_lines": preamble,
        "rows": rows,
        "n_columns": len(columns),
        "columns": columns,
    }


TABULAR = Extractor(
    name=NAME,
    version=VERSION,
    func=extract_tabular,
    extensions=frozenset({"csv", "tsv"}),
    mimes=frozenset({"text/csv", "text/tab-separated-values"}),
)
