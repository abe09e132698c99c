"""Tables (csv, tsv, delimited text, xlsx): layout sniffed on a sample, stats over every row.

The delimiter, preamble and header are detected on the first 64 KB so the C parser
can then read the whole file in chunks: memory stays bounded on multi-GB files, and
the statistics are exact because counts and sums (not chunk means) are merged
(see colstats.py). ``pd.read_csv(sep=None)`` is avoided: its Python engine can take
seconds on a single file.
"""

from __future__ import annotations

import csv
import gzip
import importlib.util
import itertools
from collections import Counter
from typing import Any

from extractors.base import Extractor, ExtractorError, NotMyFormat
from extractors.colstats import ColumnStats, accumulate

NAME = "tabular"
VERSION = "2.1"
SAMPLE_BYTES = 64 * 1024
#: Rows per chunk; tests lower it to prove the statistics merge across chunks.
CHUNK_ROWS = 200_000
MAX_SHEETS = 50
DELIMITERS = (",", "\t", ";", "|", " ")


def _fields(line: str, delim: str) -> list[str]:
    if delim == " ":
        return line.split()
    try:
        return next(csv.reader([line], delimiter=delim))
    except (csv.Error, StopIteration):
        return line.split(delim)


def _widths(lines: list[str], quotes: list[int], delim: str) -> list[int | None]:
    """Field count of each non-blank line; None where an odd number of quotes may continue it on the next.

    Without quotes a CSV reader splits exactly at each delimiter, so counting them gives the same
    width at a fraction of the cost (this runs for every sample line and every delimiter).
    """
    if delim == " ":
        return [None if q % 2 else len(ln.split()) for ln, q in zip(lines, quotes, strict=True)]
    return [None if q % 2 else ln.count(delim) + 1 if not q else len(_fields(ln, delim))
            for ln, q in zip(lines, quotes, strict=True)]


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def sniff_layout(sample: str) -> tuple[str, int, bool]:
    """(delimiter, preamble lines, has_header) from a text sample.

    For each delimiter the modal field count (>= 2) of the non-blank lines is the
    table's width; the table starts at the first non-comment line of that width,
    and lines before it are the preamble. A few ragged lines are tolerated here (the
    parser then names them), and lines with an odd number of quotes are skipped
    (they may belong to a quoted field spanning lines). The delimiter matching most
    lines wins, ties going to the more specific delimiter.
    """
    raw = sample.splitlines()
    if len(raw) > 1 and not sample.endswith(("\n", "\r")):
        raw = raw[:-1]  # the sample may cut the last line
    numbered = [(i, ln) for i, ln in enumerate(raw) if ln.strip()]
    lines = [ln for _, ln in numbered]
    quotes = [ln.count('"') for ln in lines]
    best: tuple[int, int, str, int] | None = None  # (lines matched, -rank, delim, start)
    for rank, delim in enumerate(DELIMITERS):
        counts = _widths(lines, quotes, delim)
        widths = Counter(c for c in counts if c is not None and c >= 2)
        if not widths:
            continue
        width = widths.most_common(1)[0][0]
        for start in range(min(len(numbered), 30)):
            if counts[start] != width or numbered[start][1].lstrip().startswith("#"):
                continue
            tail = counts[start:]
            good = sum(c == width or c is None for c in tail)
            if len(tail) - good > max(1, len(tail) // 10) or (len(tail) < 2 and len(numbered) > 1):
                continue
            if delim == " " and 2 * sum(_has_number(numbered[i][1]) for i in range(start, len(numbered))) < len(tail):
                break  # whitespace splits any prose: demand numbers
            if best is None or (good, -rank) > best[:2]:
                best = (good, -rank, delim, start)
            break
    if best is None:
        body = [ln.strip() for _, ln in numbered[1:]]
        if body and sum(_is_number(v) for v in body) >= 0.8 * len(body):  # one numeric column
            return ",", numbered[0][0], not _is_number(numbered[0][1].strip())
        # lines that no delimiter splits alike: a word list, a report, a log named .csv; not damage
        raise NotMyFormat("not a table: no delimiter splits the lines into a consistent number of fields")
    _, _, delim, start = best
    first = numbered[start][0]
    rows = [_fields(ln, delim) for _, ln in numbered[start : start + 51]]
    return delim, first, _has_header(rows)


def _has_number(line: str) -> bool:
    return any(_is_number(cell) for cell in line.replace(",", " ").split())


def _has_header(rows: list[list[str]]) -> bool:
    """A header is a first row of names over columns whose values are numbers, or of distinct labels."""
    if len(rows) < 2:
        return not any(_is_number(c) for c in rows[0])
    first, body = rows[0], rows[1:]
    numeric_cols = 0
    for j, cell in enumerate(first):
        values = [r[j].strip() for r in body if j < len(r) and r[j].strip()]
        if values and sum(_is_number(v) for v in values) >= 0.8 * len(values):
            numeric_cols += 1
            if not _is_number(cell.strip()) and cell.strip():
                return True
    if numeric_cols == len(first):
        return False
    labels = [c.strip() for c in first]
    if not all(labels) or len(set(labels)) != len(labels) or any(_is_number(c) for c in labels):
        return False
    return not any(r[j].strip() == labels[j] for r in body for j in range(min(len(r), len(labels))))


_COMMENT_CHARS = ("#", ";", "%", "!")


def _comment_char(sample: str) -> str | None:
    """The character that starts comment lines in the sample (``#``, ``;``, ``%``, ``!``), if any."""
    firsts = [ln.lstrip()[:1] for ln in sample.splitlines()[:200] if ln.strip()]
    counts = {c: firsts.count(c) for c in _COMMENT_CHARS}
    best = max(counts, key=lambda c: counts[c])
    return best if counts[best] else None


def _commented_header(sample: str, comment: str, delim: str, first: int, has_header: bool) -> list[str] | None:
    """Column names from the last comment line before the table when it has the table's width."""
    if has_header:
        return None
    lines = sample.split("\n")
    width = len(_fields(lines[first].strip(), delim)) if first < len(lines) else 0
    for ln in lines[:first]:  # the first comment line of the table's width (astropy's commented_header)
        if not ln.strip() or not ln.lstrip().startswith(comment):
            continue
        cells = [c.strip() for c in _fields(ln.lstrip()[1:].strip(), delim)]
        if len(cells) == width and all(cells) and not any(_is_number(c) for c in cells) and len(set(cells)) == width:
            return cells
    return None


def _ecsv_header(sample: str) -> dict[str, Any] | None:
    """Astropy ECSV: the YAML header in ``# `` lines gives column names, datatypes, units, descriptions."""
    try:
        import yaml
    except ImportError:
        return None
    lines = []
    for ln in sample.split("\n")[1:]:
        if not ln.startswith("#"):
            break
        lines.append(ln[2:] if ln.startswith("# ") else ln[1:])
    try:  # composed, not constructed: astropy's !astropy.units.Unit tags need no constructor, aliases no copies
        root = yaml.compose("\n".join(lines), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError:
        return None
    doc = _plain(root, 0)
    if not isinstance(doc, dict):
        return None
    out: dict[str, Any] = {"version": sample.split("\n", 1)[0][8:].strip()}
    if isinstance(doc.get("delimiter"), str):
        out["delimiter"] = doc["delimiter"]
    cols = []
    for c in (doc.get("datatype") or [])[:500]:
        if isinstance(c, dict) and "name" in c:
            cols.append({k: str(c[k])[:200] for k in ("name", "datatype", "unit", "description", "subtype")
                         if k in c})
    out["columns"] = cols
    if isinstance(doc.get("meta"), dict):
        out["meta_keys"] = [str(k)[:100] for k in list(doc["meta"])[:100]]
    return out


def _plain(node: Any, depth: int, budget: list[int] | None = None) -> Any:
    """A YAML node graph as plain values, depth- and size-capped (every node is visited at most once)."""
    budget = budget if budget is not None else [20_000]
    budget[0] -= 1
    if node is None or depth > 6 or budget[0] < 0:
        return None
    kind = type(node).__name__
    if kind == "ScalarNode":
        return str(node.value)[:200]
    if kind == "SequenceNode":
        return [_plain(v, depth + 1, budget) for v in node.value[:1000]]
    if kind == "MappingNode":
        return {str(getattr(k, "value", k))[:100]: _plain(v, depth + 1, budget) for k, v in node.value[:500]}
    return None


def _read_sample(path: str) -> tuple[bytes, str | None]:
    with open(path, "rb") as fh:
        magic = fh.read(2)
    if magic == b"\x1f\x8b":
        with gzip.open(path, "rb") as gz:
            return gz.read(SAMPLE_BYTES), "gzip"
    with open(path, "rb") as fh:
        return fh.read(SAMPLE_BYTES), None


def _decode(raw: bytes) -> tuple[str, str]:
    """(text, encoding): UTF-8 (BOM-aware) when it decodes, else Latin-1."""
    if raw.startswith(b"\xef\xbb\xbf"):
        return raw[3:].decode("utf-8", errors="replace"), "utf-8-sig"
    try:
        return raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError as exc:
        if exc.start >= len(raw) - 4:
            return raw[: exc.start].decode("utf-8"), "utf-8"
    return raw.decode("latin-1"), "latin-1"


def extract_delimited(path: str) -> dict[str, Any]:
    import pandas as pd

    raw, compression = _read_sample(path)
    if not raw.strip():
        raise ExtractorError("empty table")
    sample, encoding = _decode(raw)
    ecsv = _ecsv_header(sample) if sample.startswith("# %ECSV") else None
    comment = _comment_char(sample)
    names: list[str] | None = None
    try:
        delim, preamble, has_header = sniff_layout(sample)
    except ExtractorError:
        if comment is None:
            raise
        # comment lines (a commented header, notes between blocks) blanked out, numbering kept
        blanked = "\n".join("" if ln.lstrip().startswith(comment) else ln for ln in sample.split("\n"))
        delim, preamble, has_header = sniff_layout(blanked)
    if comment is not None and ecsv is None:
        names = _commented_header(sample, comment, delim, preamble, has_header)
    if ecsv is not None:
        delim = ecsv.get("delimiter", " ")
    options: dict[str, Any] = {
        "sep": r"\s+" if delim == " " else delim,
        "skiprows": preamble,
        "header": 0 if has_header else None,
        "encoding": encoding,
        "encoding_errors": "replace",
        "compression": compression,
        "skip_blank_lines": True,
    }
    if comment is not None and comment != delim and (names is not None or ecsv is not None):
        options["comment"] = comment
    if names is not None:
        options["names"] = names
    stats: dict[str, ColumnStats] = {}
    rows = 0
    with pd.read_csv(path, chunksize=CHUNK_ROWS, **options) as reader:
        for chunk in reader:
            rows += len(chunk)
            accumulate(stats, chunk)
    mixed = [name for name, st in stats.items() if st.mixed]
    if mixed:  # a column typed differently in different chunks: count its values as text
        positions = [list(stats).index(name) for name in mixed]
        for name in mixed:
            stats[name] = ColumnStats(name)
        with pd.read_csv(path, chunksize=CHUNK_ROWS, usecols=positions, dtype=str, **options) as reader:
            for chunk in reader:
                chunk.columns = [str(c) for c in chunk.columns]
                accumulate(stats, chunk, text_only=True)
        for name in mixed:
            stats[name].kinds = {"object"}
    columns = [st.result() for st in stats.values()]
    extra: dict[str, Any] = {}
    if names is not None:
        extra["commented_header"] = True
    if ecsv is not None:
        extra["ecsv"] = ecsv
        units = {c["name"]: c for c in ecsv.get("columns", [])}
        for col in columns:
            meta = units.get(str(col.get("name")))
            if meta:
                col.update({k: v for k, v in meta.items() if k in ("unit", "datatype", "description")})
    return {
        **extra,
        "format": "ecsv" if ecsv is not None else "delimited",
        "delimiter": delim,
        "header": has_header,
        "preamble_lines": preamble,
        "encoding": encoding,
        "compression": compression,
        "rows": rows,
        "n_columns": len(columns),
        "columns": columns,
    }


def _sheet_table(rows: list[tuple[Any, ...]]) -> tuple[int, bool]:
    """(preamble rows, has_header) of a sheet from its first rows."""
    widths = [sum(v is not None and v != "" for v in r) for r in rows]
    width = max(widths, default=0)
    start = 0
    while start < len(rows) and width > 1 and widths[start] <= 1:
        start += 1
    if start >= len(rows):
        return start, False
    first = rows[start]
    nxt = rows[start + 1] if start + 1 < len(rows) else ()
    header = all(isinstance(v, str) for v in first if v is not None) and any(
        v is not None and not isinstance(v, str) for v in nxt)
    return start, header


def extract_xlsx(path: str) -> dict[str, Any]:
    import openpyxl
    import pandas as pd

    wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    sheets: list[dict[str, Any]] = []
    try:
        for ws in wb.worksheets[:MAX_SHEETS]:
            it = ws.iter_rows(values_only=True)
            head = [r for _, r in zip(range(30), it, strict=False)]
            preamble, header = _sheet_table(head)
            body = iter(head[preamble:])
            names = None
            if header:
                names = [str(v) if v is not None else f"column_{j}" for j, v in enumerate(next(body))]
            stats: dict[str, ColumnStats] = {}
            n_rows, buf = 0, []

            def flush(buf: list[tuple[Any, ...]], names: list[str] | None = names,
                      stats: dict[str, ColumnStats] = stats) -> None:
                width = max(len(names or []), max((len(r) for r in buf), default=0))
                cols = (names or []) + [str(j) for j in range(len(names or []), width)]
                frame = pd.DataFrame([list(r) + [None] * (width - len(r)) for r in buf], columns=cols)
                accumulate(stats, frame.infer_objects())

            for row in itertools.chain(body, it):
                if all(v is None for v in row):
                    continue
                buf.append(row)
                n_rows += 1
                if len(buf) >= CHUNK_ROWS:
                    flush(buf)
                    buf = []
            if buf:
                flush(buf)
            columns = [st.result() for st in stats.values()]
            sheets.append({"name": ws.title, "preamble_lines": preamble, "header": header, "rows": n_rows,
                           "n_columns": len(columns), "columns": columns})
    finally:
        wb.close()
    if not sheets:
        raise ExtractorError("workbook has no worksheets")
    first = sheets[0]
    return {"format": "xlsx", "delimiter": None, "header": first["header"], "preamble_lines": first["preamble_lines"],
            "rows": first["rows"], "n_columns": first["n_columns"], "columns": first["columns"],
            "n_sheets": len(wb.sheetnames), "sheets": sheets}


def extract_xls(path: str) -> dict[str, Any]:
    import pandas as pd

    book = pd.read_excel(path, sheet_name=None, header=None, engine="xlrd")
    sheets = []
    for name, frame in list(book.items())[:MAX_SHEETS]:
        stats: dict[str, ColumnStats] = {}
        accumulate(stats, frame.dropna(how="all"))
        columns = [st.result() for st in stats.values()]
        sheets.append({"name": name, "rows": int(frame.dropna(how="all").shape[0]), "n_columns": len(columns),
                       "columns": columns})
    if not sheets:
        raise ExtractorError("workbook has no worksheets")
    return {"format": "xls", "delimiter": None, "header": False, "preamble_lines": 0, "rows": sheets[0]["rows"],
            "n_columns": sheets[0]["n_columns"], "columns": sheets[0]["columns"], "sheets": sheets}


def extract_tabular(path: str) -> dict[str, Any]:
    """Dispatch on the container: zip means a workbook, OLE2 an old .xls, else delimited text."""
    with open(path, "rb") as fh:
        magic = fh.read(8)
    if magic.startswith(b"PK\x03\x04"):
        return extract_xlsx(path)
    if magic == b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1":
        return extract_xls(path)
    return extract_delimited(path)


_HAS_XLRD = importlib.util.find_spec("xlrd") is not None
_HAS_OPENPYXL = importlib.util.find_spec("openpyxl") is not None
_XLSX_MIME = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

TABULAR = Extractor(
    name=NAME,
    version=VERSION,
    func=extract_tabular,
    extensions=frozenset({"csv", "tsv", "psv", "csv.gz", "tsv.gz", "ecsv"}
                         | ({"xlsx", "xlsm"} if _HAS_OPENPYXL else set()) | ({"xls"} if _HAS_XLRD else set())),
    mimes=frozenset({"text/csv", "text/tab-separated-values"}
                    | ({_XLSX_MIME} if _HAS_OPENPYXL else set())
                    | ({"application/vnd.ms-excel"} if _HAS_XLRD else set())),
    kind="text",
    accepts=frozenset({"application/gzip", "application/zip", "application/x-ole-storage"}),
    preload=("pandas",),
)
