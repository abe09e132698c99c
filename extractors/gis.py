"""GIS sidecars (ESRI shapefile .shp/.shx, WKT .prj, .cpg) and gettext catalogues (.mo).

A shapefile's 100-byte header gives the geometry type and bounding box; records
are counted from the index (.shx: fixed 8-byte entries) or by walking the 8-byte
record headers of the .shp (seeks only, capped). A .prj holds one WKT coordinate
reference system: its name, kind, datum, projection and unit are parsed with a
regular expression, no PROJ needed. A gettext .mo catalogue's header entry
carries the project, language and plural forms. The shapefile's .dbf is read by
the ``databases`` extractor.
"""

from __future__ import annotations

import os
import re
import struct
from typing import Any

from extractors.base import Extractor, ExtractorError, NotMyFormat

NAME = "gis"
VERSION = "1.0"
MAX_RECORDS = 1_000_000
SHAPE_TYPES = {0: "null", 1: "point", 3: "polyline", 5: "polygon", 8: "multipoint", 11: "pointz", 13: "polylinez",
               15: "polygonz", 18: "multipointz", 21: "pointm", 23: "polylinem", 25: "polygonm", 28: "multipointm",
               31: "multipatch"}
_WKT_ROOT = re.compile(r'^\s*(PROJCS|GEOGCS|GEOCCS|COMPD_CS|VERT_CS|LOCAL_CS|PROJCRS|GEOGCRS|GEODCRS|BOUNDCRS|'
                       r'COMPOUNDCRS|VERTCRS|ENGCRS)\s*\[\s*"([^"]*)"')
_WKT_FIELD = {"datum": re.compile(r'(?:DATUM|TRF)\s*\[\s*"([^"]*)"'),
              "projection": re.compile(r'(?:PROJECTION|METHOD)\s*\[\s*"([^"]*)"'),
              "unit": re.compile(r'(?:UNIT|LENGTHUNIT|ANGLEUNIT)\s*\[\s*"([^"]*)"[^\[\]]*\]\s*(?:,\s*AXIS|\]\s*$|,\s*'
                                 r'AUTHORITY|\]?\s*$)'),
              "spheroid": re.compile(r'(?:SPHEROID|ELLIPSOID)\s*\[\s*"([^"]*)"')}
_AUTHORITY = re.compile(r'(?:AUTHORITY|ID)\s*\[\s*"([^"]+)"\s*,\s*"?(\d+)"?\s*\]\s*\]\s*$')


def sniff_gis(head: bytes) -> bool:
    return head[:4] == b"\x00\x00\x27\x0a" or head[:4] in (b"\xde\x12\x04\x95", b"\x95\x04\x12\xde") or bool(
        _WKT_ROOT.match(head[:200].decode("latin-1")))


def _shape(path: str) -> dict[str, Any]:
    size = os.path.getsize(path)
    with open(path, "rb") as fh:
        h = fh.read(100)
        if len(h) < 100:
            raise ExtractorError("shapefile header cut short")
        length_words = struct.unpack_from(">i", h, 24)[0]
        version, shape_type = struct.unpack_from("<ii", h, 28)
        xmin, ymin, xmax, ymax, zmin, zmax, mmin, mmax = struct.unpack_from("<8d", h, 36)
        out: dict[str, Any] = {"format": "shx" if path.lower().endswith(".shx") else "shp", "version": version,
                               "shape_type": SHAPE_TYPES.get(shape_type, str(shape_type)),
                               "bbox": [xmin, ymin, xmax, ymax], "declared_bytes": 2 * length_words}
        if shape_type in (11, 13, 15, 18, 31):
            out["z_range"] = [zmin, zmax]
        if out["format"] == "shx":
            out["records"] = max(0, (min(size, 2 * length_words) - 100) // 8)
        else:
            pos, n = 100, 0
            while pos + 8 <= size and n < MAX_RECORDS:
                fh.seek(pos)
                rec = fh.read(8)
                _, clen = struct.unpack(">ii", rec)
                if clen < 0:
                    break
                pos += 8 + 2 * clen
                n += 1
            out["records"] = n
            if pos > size:
                out["truncated"] = True
    if 2 * length_words > size:
        out["truncated"] = True
    return out


def _wkt(text: str) -> dict[str, Any]:
    m = _WKT_ROOT.match(text)
    if not m:
        raise NotMyFormat("not a WKT coordinate reference system")
    kind = m.group(1)
    out: dict[str, Any] = {"format": "wkt", "crs_name": m.group(2),
                           "kind": "projected" if kind.startswith("PROJ") else "geographic" if kind.startswith(
                               ("GEOG", "GEOD")) else kind.lower(), "wkt_version": 2 if kind.endswith("CRS") else 1}
    for key, pat in _WKT_FIELD.items():
        found = pat.search(text)
        if found:
            out[key] = found.group(1)
    auth = _AUTHORITY.search(text.strip())
    if auth:
        out["authority"] = f"{auth.group(1)}:{auth.group(2)}"
    return out


def _mo(path: str) -> dict[str, Any]:
    with open(path, "rb") as fh:
        data = fh.read(4 * 1024 * 1024)
    e = "<" if data[:4] == b"\xde\x12\x04\x95" else ">"
    revision, n, orig_off, trans_off = struct.unpack_from(e + "4I", data, 4)
    out: dict[str, Any] = {"format": "gettext-mo", "revision": revision, "messages": n}
    if n and trans_off + 8 <= len(data):
        olen, ooff = struct.unpack_from(e + "2I", data, orig_off)
        tlen, toff = struct.unpack_from(e + "2I", data, trans_off)
        if olen == 0 and toff + tlen <= len(data):  # the header entry: msgid ""
            header = data[toff : toff + tlen].decode("utf-8", errors="replace")
            fields = {}
            for line in header.splitlines()[:50]:
                key, _, value = line.partition(":")
                if key.strip() and value.strip():
                    fields[key.strip()] = value.strip()[:200]
            out["header"] = fields
            if "Language" in fields:
                out["language"] = fields["Language"]
    return out


def extract_gis(path: str) -> dict[str, Any]:
    with open(path, "rb") as fh:
        head = fh.read(4096)
    if not head:
        raise ExtractorError("empty file")
    if head[:4] == b"\x00\x00\x27\x0a":
        return _shape(path)
    if head[:4] in (b"\xde\x12\x04\x95", b"\x95\x04\x12\xde"):
        return _mo(path)
    if path.lower().endswith(".cpg") and len(head) < 64:
        return {"format": "cpg", "encoding": head.decode("latin-1").strip()}
    with open(path, "rb") as fh:
        text = fh.read(1 << 20).decode("utf-8", errors="replace")
    return _wkt(text)


GIS = Extractor(
    name=NAME,
    version=VERSION,
    func=extract_gis,
    extensions=frozenset({"shp", "shx", "prj", "cpg", "mo", "wkt"}),
    mimes=frozenset({"application/x-esri-shape", "application/x-gettext-translation", "application/wkt"}),
    kind="any",
    sniff=sniff_gis,
)
