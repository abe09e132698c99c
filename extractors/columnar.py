"""Columnar and statistics-package tables (Parquet, Feather/Arrow IPC, ORC, Stata, SPSS): schema and size.

Parquet and ORC keep their schema, row counts, row groups/stripes and key-value
metadata in a footer: pyarrow reads the footer only. Arrow IPC files are memory-
mapped and only batch headers are touched. Stata files give variable names, types,
labels and the observation count from their header (pandas' lazy StataReader).
No column data is read, so a 50 GB Parquet file costs what its footer costs.
"""

from __future__ import annotations

import json
import os
from typing import Any

from extractors.base import Extractor, ExtractorError, NotMyFormat, require

NAME = "columnar"
VERSION = "1.0"
MAX_COLUMNS = 2_000
MAX_META_VALUE = 2_000
MAX_BATCHES = 100_000


def sniff_columnar(head: bytes) -> bool:
    return head.startswith((b"PAR1", b"ARROW1", b"ORC", b"FEA1", b"<stata_dta>", b"$FL2", b"$FL3"))


def _kv(meta: dict[bytes, bytes] | None) -> dict[str, Any]:
    """Key-value metadata: JSON documents (pandas, geo) summarised by their keys, text kept short."""
    out: dict[str, Any] = {}
    for k, v in list((meta or {}).items())[:100]:
        key = k.decode("utf-8", errors="replace")
        text = v.decode("utf-8", errors="replace")
        if text[:1] in "{[":
            try:
                doc = json.loads(text)
            except ValueError:
                doc = None
            if isinstance(doc, dict):
                summary: dict[str, Any] = {"keys": list(doc)[:50]}
                for field in ("version", "creator", "primary_column", "index_columns"):
                    if field in doc:
                        summary[field] = doc[field] if not isinstance(doc[field], (dict, list)) else json.dumps(
                            doc[field])[:200]
                out[key] = summary
                continue
        out[key] = text[:MAX_META_VALUE]
    return out


def _schema(schema: Any) -> list[dict[str, Any]]:
    return [{"name": f.name, "type": str(f.type), "nullable": f.nullable} for f in list(schema)[:MAX_COLUMNS]]


def _parquet(path: str) -> dict[str, Any]:
    pq = require("pyarrow.parquet", package="pyarrow")
    try:
        pf = pq.ParquetFile(path)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises ArrowInvalid/OSError for a damaged footer
        raise ExtractorError(f"unreadable Parquet footer: {exc}") from None
    md = pf.metadata
    schema = pf.schema_arrow
    cols = _schema(schema)
    if md.num_row_groups:
        rg = md.row_group(0)
        for i, c in enumerate(cols):
            if i < rg.num_columns:
                cc = rg.column(i)
                c["compression"] = cc.compression
                st = cc.statistics
                if st is not None and st.has_min_max and i < 200:
                    try:
                        c["min_rg0"], c["max_rg0"] = _short(st.min), _short(st.max)
                    except Exception:  # noqa: BLE001 - logical types pyarrow cannot convert
                        pass
    return {"format": "parquet", "rows": md.num_rows, "row_groups": md.num_row_groups, "n_columns": len(schema),
            "columns": cols, "created_by": md.created_by, "format_version": md.format_version,
            "serialized_footer_bytes": md.serialized_size, "metadata": _kv(schema.metadata)}


def _short(v: Any) -> Any:
    if isinstance(v, bytes):
        return v[:100].decode("utf-8", errors="replace")
    if isinstance(v, (int, float, bool)) or v is None:
        return v
    return str(v)[:100]


def _arrow(path: str) -> dict[str, Any]:
    pa = require("pyarrow", package="pyarrow")
    import pyarrow.ipc as ipc

    with pa.memory_map(path, "r") as source:
        try:
            reader = ipc.open_file(source)
        except pa.ArrowInvalid as exc:
            raise ExtractorError(f"unreadable Arrow IPC file: {exc}") from None
        n = reader.num_record_batches
        rows = sum(reader.get_batch(i).num_rows for i in range(min(n, MAX_BATCHES)))  # zero-copy: headers only
        schema = reader.schema
    return {"format": "arrow-ipc", "rows": rows, "record_batches": n, "n_columns": len(schema),
            "columns": _schema(schema), "metadata": _kv(schema.metadata)}


def _orc(path: str) -> dict[str, Any]:
    orc = require("pyarrow.orc", package="pyarrow")
    try:
        f = orc.ORCFile(path)
    except Exception as exc:  # noqa: BLE001
        raise ExtractorError(f"unreadable ORC footer: {exc}") from None
    schema = f.schema
    return {"format": "orc", "rows": f.nrows, "stripes": f.nstripes, "n_columns": len(schema),
            "columns": _schema(schema), "compression": f.compression, "writer": str(f.writer),
            "metadata": _kv(f.metadata)}


def _stata(path: str) -> dict[str, Any]:
    import pandas as pd

    try:
        with pd.read_stata(path, iterator=True) as reader:
            labels = reader.variable_labels()
            names = list(labels)
            out: dict[str, Any] = {"format": "stata", "rows": getattr(reader, "_nobs", None),
                                   "data_label": reader.data_label, "n_columns": len(names)}
            types = getattr(reader, "_dtyplist", None) or []
            out["columns"] = [{"name": n, "label": labels[n][:200] or None,
                               **({"type": str(types[i])} if i < len(types) else {})}
                              for i, n in enumerate(names[:MAX_COLUMNS])]
            out["format_version"] = getattr(reader, "_format_version", None)
            try:
                out["value_label_sets"] = len(reader.value_labels())
            except Exception:  # noqa: BLE001 - value labels sit after the data; a truncated file lacks them
                pass
    except (ValueError, EOFError, UnicodeDecodeError) as exc:
        raise ExtractorError(f"unreadable Stata file: {exc}") from None
    if out["rows"] is None:
        out.pop("rows")
    return out


def _spss(path: str) -> dict[str, Any]:
    """SPSS .sav/.zsav: the 176-byte file header, then variable records (name, type, label) until the first
    record of another kind. Data are never read."""
    import struct

    with open(path, "rb") as fh:
        h = fh.read(176)
        if len(h) < 176:
            raise ExtractorError("SPSS header cut short")
        e = "<" if struct.unpack_from("<i", h, 64)[0] in (2, 3) else ">"
        case_size, compression, _, ncases = struct.unpack_from(e + "4i", h, 68)
        out: dict[str, Any] = {"format": "spss-zsav" if h[:4] == b"$FL3" else "spss-sav",
                               "product": h[4:64].decode("latin-1").strip(), "compression": compression,
                               "rows": ncases if ncases >= 0 else None,
                               "created": f"{h[92:101].decode('latin-1')} {h[101:109].decode('latin-1')}".strip(),
                               "file_label": h[109:173].decode("latin-1").strip()}
        columns: list[dict[str, Any]] = []
        n_vars = 0
        while n_vars < MAX_COLUMNS * 8:
            raw = fh.read(32)
            if len(raw) < 32 or struct.unpack_from(e + "i", raw, 0)[0] != 2:
                break
            _, vtype, has_label, n_missing, _, _ = struct.unpack_from(e + "6i", raw, 0)
            name = raw[24:32].decode("latin-1").strip()
            label = None
            if has_label:
                (n,) = struct.unpack(e + "i", fh.read(4))
                label = fh.read(n + (-n % 4))[:n].decode("latin-1", errors="replace").strip()[:200]
            fh.seek(8 * abs(n_missing), 1)
            n_vars += 1
            if vtype != -1 and len(columns) < MAX_COLUMNS:  # -1: the continuation of a long string
                columns.append({"name": name, "type": "numeric" if vtype == 0 else f"string({vtype})",
                                **({"label": label} if label else {})})
    out.update(n_columns=len(columns), columns=columns, nominal_case_size=case_size)
    return out


def extract_columnar(path: str) -> dict[str, Any]:
    if os.path.getsize(path) == 0:
        raise ExtractorError("empty file")
    with open(path, "rb") as fh:
        head = fh.read(16)
    if head.startswith(b"PAR1"):
        return _parquet(path)
    if head.startswith(b"ARROW1"):
        return _arrow(path)
    if head.startswith(b"ORC"):
        return _orc(path)
    if head.startswith(b"FEA1"):
        return {"format": "feather-v1", "note": "Feather v1: schema not read (rewrite as Feather v2/Arrow IPC)"}
    if head.startswith((b"$FL2", b"$FL3")):
        return _spss(path)
    if head.startswith(b"<stata_dta>") or (path.lower().endswith(".dta") and head[:1] in (b"\x71", b"\x72",
                                                                                           b"\x73", b"\x6f")):
        return _stata(path)
    raise NotMyFormat("no Parquet, Arrow, ORC or Stata signature")


COLUMNAR = Extractor(
    name=NAME,
    version=VERSION,
    func=extract_columnar,
    extensions=frozenset({"parquet", "pq", "feather", "arrow", "ipc", "orc", "dta", "zsav", "por"}),
    mimes=frozenset({"application/vnd.apache.parquet", "application/vnd.apache.arrow.file",
                     "application/x-orc", "application/x-stata-dta", "application/x-spss-sav"}),
    kind="any",
    sniff=sniff_columnar,
    preload=("pyarrow.parquet",),
)
