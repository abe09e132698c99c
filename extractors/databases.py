"""Database files (SQLite, dBase .dbf): tables, columns, record counts from the schema.

SQLite is opened read-only and immutable (no journal, no lock, no write), with
``trusted_schema`` off so nothing in the schema (views, triggers) runs: only
``sqlite_master`` and ``PRAGMA table_info`` are read, and the row count is the
largest rowid (an index lookup, not a scan). dBase files describe themselves in a
fixed header: record count, field names, types and widths.
"""

from __future__ import annotations

import os
import struct
from datetime import date
from typing import Any
from urllib.parse import quote

from extractors.base import Extractor, ExtractorError, NotMyFormat

NAME = "databases"
VERSION = "1.0"
MAX_TABLES = 500
MAX_FIELDS = 2_000
DBF_TYPES = {"C": "char", "N": "numeric", "F": "float", "L": "logical", "D": "date", "M": "memo", "I": "int32",
             "B": "double", "T": "datetime", "Y": "currency", "0": "flags", "@": "timestamp", "+": "autoinc"}


def _sqlite(path: str) -> dict[str, Any]:
    import sqlite3

    uri = f"file:{quote(os.path.abspath(path))}?mode=ro&immutable=1"
    try:
        con = sqlite3.connect(uri, uri=True)
    except sqlite3.Error as exc:
        raise ExtractorError(f"unreadable SQLite database: {exc}") from None
    try:
        con.execute("PRAGMA trusted_schema=OFF")
        con.execute("PRAGMA cell_size_check=ON")
        rows = con.execute("SELECT type, name, tbl_name FROM sqlite_master LIMIT 10000").fetchall()
        tables: list[dict[str, Any]] = []
        for kind, name, _ in rows:
            if kind != "table" or len(tables) >= MAX_TABLES:
                continue
            q = '"' + str(name).replace('"', '""') + '"'
            cols = [{"name": c[1], "type": c[2], "pk": bool(c[5])}
                    for c in con.execute(f"PRAGMA table_info({q})").fetchall()[:MAX_FIELDS]]
            entry: dict[str, Any] = {"name": name, "columns": cols}
            try:
                entry["max_rowid"] = con.execute(f"SELECT max(rowid) FROM {q}").fetchone()[0]
            except sqlite3.Error:
                pass  # WITHOUT ROWID tables
            tables.append(entry)
        version = con.execute("PRAGMA user_version").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        raise ExtractorError(f"damaged SQLite database: {exc}") from None
    finally:
        con.close()
    kinds: dict[str, int] = {}
    for kind, _, _ in rows:
        kinds[kind] = kinds.get(kind, 0) + 1
    return {"format": "sqlite", "user_version": version, "objects": kinds, "n_tables": kinds.get("table", 0),
            "tables": tables}


def _dbf(path: str) -> dict[str, Any]:
    with open(path, "rb") as fh:
        head = fh.read(32)
        if len(head) < 32:
            raise ExtractorError("dBase header cut short")
        version, yy, mm, dd, n_records, header_len, record_len = struct.unpack("<BBBBIHH", head[:12])
        if header_len < 33 or record_len == 0 or not 1 <= mm <= 12 or not 1 <= dd <= 31:
            raise NotMyFormat("not a dBase header")
        raw = fh.read(min(header_len - 32, 32 * MAX_FIELDS))
    fields = []
    for i in range(0, len(raw) - 31, 32):
        if raw[i] == 0x0D:
            break
        name = raw[i : i + 11].split(b"\x00", 1)[0].decode("latin-1")
        ftype = chr(raw[i + 11])
        fields.append({"name": name, "type": DBF_TYPES.get(ftype, ftype), "length": raw[i + 16],
                       "decimals": raw[i + 17]})
    try:
        updated = date(1900 + yy if yy > 80 else 2000 + yy, mm, dd).isoformat()
    except ValueError:
        updated = None
    out = {"format": "dbf", "version": version, "records": n_records, "record_bytes": record_len,
           "last_update": updated, "n_fields": len(fields), "fields": fields}
    if os.path.getsize(path) < header_len + n_records * record_len:
        out["truncated"] = True
    return out


def extract_databases(path: str) -> dict[str, Any]:
    with open(path, "rb") as fh:
        head = fh.read(16)
    if head.startswith(b"SQLite format 3\x00"):
        return _sqlite(path)
    if head and head[0] in (0x02, 0x03, 0x04, 0x05, 0x30, 0x31, 0x43, 0x83, 0x8B, 0x8E, 0xF5):
        return _dbf(path)
    raise NotMyFormat("neither SQLite nor dBase")


DATABASES = Extractor(
    name=NAME,
    version=VERSION,
    func=extract_databases,
    extensions=frozenset({"sqlite", "sqlite3", "db", "gpkg", "mbtiles", "dbf"}),
    mimes=frozenset({"application/vnd.sqlite3", "application/x-sqlite3", "application/x-dbf",
                     "application/geopackage+sqlite3"}),
    kind="any",
)
