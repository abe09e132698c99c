"""Fonts (ttf, otf, ttc, woff, afm, pfa/pfb): family, style, version, glyph count.

A small sfnt reader, no font library: the table directory, then only the ``name``,
``head``, ``maxp`` and ``OS/2`` tables (a few KB whatever the font's size). WOFF
tables are zlib-compressed: only those four are inflated, each capped. AFM metrics
and Type 1 fonts are text headers read line by line (first 64 KB).
"""

from __future__ import annotations

import os
import struct
import zlib
from datetime import UTC, datetime, timedelta
from typing import Any

from extractors.base import Extractor, ExtractorError, NotMyFormat

NAME = "fonts"
VERSION = "1.0"
MAX_TABLE = 1 << 20
MAX_TABLES = 1_000
NAME_IDS = {0: "copyright", 1: "family", 2: "subfamily", 3: "unique_id", 4: "full_name", 5: "version",
            6: "postscript_name", 7: "trademark", 8: "manufacturer", 9: "designer", 11: "vendor_url",
            13: "license", 16: "typographic_family", 17: "typographic_subfamily"}
SFNT_MAGICS = {b"\x00\x01\x00\x00": "truetype", b"OTTO": "opentype-cff", b"true": "truetype", b"typ1": "type1-sfnt"}
_EPOCH = datetime(1904, 1, 1, tzinfo=UTC)
AFM_KEYS = {"FontName": "postscript_name", "FullName": "full_name", "FamilyName": "family", "Weight": "weight",
            "Version": "version", "Notice": "copyright", "ItalicAngle": "italic_angle",
            "IsFixedPitch": "fixed_pitch", "CharacterSet": "character_set", "EncodingScheme": "encoding",
            "CapHeight": "cap_height", "XHeight": "x_height", "Ascender": "ascender", "Descender": "descender"}


def sniff_font(head: bytes) -> bool:
    return head[:4] in SFNT_MAGICS or head[:4] in (b"ttcf", b"wOFF", b"wOF2") or head.startswith(
        (b"StartFontMetrics", b"%!PS-AdobeFont", b"%!FontType1", b"\x80\x01"))


def _names(data: bytes) -> dict[str, str]:
    if len(data) < 6:
        return {}
    _, count, string_offset = struct.unpack_from(">HHH", data, 0)
    found: dict[int, tuple[int, str]] = {}
    for i in range(min(count, 2000)):
        pos = 6 + 12 * i
        if pos + 12 > len(data):
            break
        platform, encoding, language, name_id, length, offset = struct.unpack_from(">6H", data, pos)
        if name_id not in NAME_IDS:
            continue
        raw = data[string_offset + offset : string_offset + offset + min(length, 2000)]
        if platform in (0, 3):
            text, rank = raw.decode("utf-16-be", errors="replace"), (0 if language in (0, 0x409) else 1)
        elif platform == 1 and encoding == 0:
            text, rank = raw.decode("mac_roman", errors="replace"), 2
        else:
            continue
        if name_id not in found or rank < found[name_id][0]:
            found[name_id] = (rank, text.strip("\x00 ")[:500])
    return {NAME_IDS[k]: v for k, (_, v) in sorted(found.items()) if v}


def _date(seconds: int) -> str | None:
    try:
        return (_EPOCH + timedelta(seconds=seconds)).isoformat()
    except (OverflowError, ValueError):
        return None


def _sfnt(fh: Any, base: int, size: int, woff: bool = False) -> dict[str, Any]:
    fh.seek(base)
    head = fh.read(44 if woff else 12)
    if woff:
        flavor, _, num_tables = struct.unpack_from(">4sIH", head, 4)
        rec, rec_size = 44, 20
    else:
        flavor, num_tables = head[:4], struct.unpack_from(">H", head, 4)[0]
        rec, rec_size = base + 12, 16
    if num_tables == 0 or num_tables > MAX_TABLES:
        raise ExtractorError(f"implausible table count {num_tables}")
    fh.seek(rec)
    directory = fh.read(rec_size * num_tables)
    if len(directory) < rec_size * num_tables:
        raise ExtractorError("truncated font: table directory cut short")
    tables: dict[str, tuple[int, int, int]] = {}
    for i in range(num_tables):
        if woff:
            tag, offset, comp, orig, _ = struct.unpack_from(">4sIIII", directory, i * rec_size)
        else:
            tag, _, offset, orig = struct.unpack_from(">4sIII", directory, i * rec_size)
            comp = orig
        tables[tag.decode("latin-1")] = (offset, comp, orig)

    def table(tag: str) -> bytes:
        if tag not in tables:
            return b""
        offset, comp, orig = tables[tag]
        if offset + comp > size:
            raise ExtractorError(f"truncated font: table {tag!r} lies past the end of the file")
        fh.seek(offset)
        raw = fh.read(min(comp, MAX_TABLE))
        if woff and comp < orig:
            z = zlib.decompressobj()
            raw = z.decompress(raw, MAX_TABLE)
        return raw

    out: dict[str, Any] = {"flavor": SFNT_MAGICS.get(flavor, flavor.decode("latin-1")), "n_tables": num_tables,
                           "tables": sorted(tables)[:100]}
    out.update(_names(table("name")))
    maxp = table("maxp")
    if len(maxp) >= 6:
        out["glyphs"] = struct.unpack_from(">H", maxp, 4)[0]
    h = table("head")
    if len(h) >= 54:
        out["units_per_em"] = struct.unpack_from(">H", h, 18)[0]
        created, modified = struct.unpack_from(">qq", h, 20)
        out["created"], out["modified"] = _date(created), _date(modified)
        mac_style = struct.unpack_from(">H", h, 44)[0]
        out["bold"], out["italic"] = bool(mac_style & 1), bool(mac_style & 2)
    os2 = table("OS/2")
    if len(os2) >= 10:
        out["weight_class"], out["width_class"], fs_type = struct.unpack_from(">HHH", os2, 4)
        out["embedding"] = {0: "installable", 2: "restricted", 4: "preview-print", 8: "editable"}.get(
            fs_type & 0xE, str(fs_type))
    out["color"] = any(t in tables for t in ("COLR", "CBDT", "sbix", "SVG "))
    out["variable"] = "fvar" in tables
    return out


def _text_font(path: str, head: bytes) -> dict[str, Any]:
    with open(path, "rb") as fh:
        raw = fh.read(65536)
    if raw[:2] == b"\x80\x01":  # PFB: a 6-byte segment header before the PostScript text
        raw = raw[6:]
    text = raw.decode("latin-1")
    out: dict[str, Any] = {}
    if text.startswith("StartFontMetrics"):
        out["format"] = "afm"
        first = text.split("\n", 1)[0].split()
        out["afm_version"] = first[1] if len(first) > 1 else None
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key in AFM_KEYS and AFM_KEYS[key] not in out:
                value = value.strip()
                out[AFM_KEYS[key]] = (value == "true") if value in ("true", "false") else value[:500]
            elif key == "StartCharMetrics":
                out["glyphs"] = int(value) if value.strip().isdigit() else value.strip()
            elif key == "StartKernPairs":
                out["kern_pairs"] = int(value) if value.strip().isdigit() else value.strip()
            elif key == "FontBBox":
                try:
                    out["bbox"] = [float(v.rstrip(",")) for v in value.split()[:4]]
                except ValueError:
                    out["bbox"] = value.strip()[:100]
    else:
        out["format"] = "type1"
        first = text.split("\n", 1)[0]
        out["header"] = first[:200]
        for line in text.splitlines()[:200]:
            line = line.strip()
            for key, name in (("/FontName", "postscript_name"), ("/FullName", "full_name"),
                              ("/FamilyName", "family"), ("/Weight", "weight"), ("/version", "version"),
                              ("/Notice", "copyright")):
                if line.startswith(key + " ") and name not in out:
                    out[name] = line[len(key):].strip().strip("/()").removesuffix("readonly def").strip(
                        " ()")[:500]
    return out


def extract_fonts(path: str) -> dict[str, Any]:
    size = os.path.getsize(path)
    with open(path, "rb") as fh:
        head = fh.read(64)
        if len(head) < 12:
            if head.startswith((b"StartFontMetrics", b"%!")):
                return _text_font(path, head)
            raise NotMyFormat("too short for a font") if head else ExtractorError("empty file")
        magic = head[:4]
        try:
            if magic in SFNT_MAGICS:
                return {"format": "sfnt", **_sfnt(fh, 0, size)}
            if magic == b"ttcf":
                n_fonts = struct.unpack_from(">I", head, 8)[0]
                first = struct.unpack_from(">I", head, 12)[0] if len(head) >= 16 else 0
                return {"format": "ttc", "n_fonts": n_fonts, **_sfnt(fh, first, size)}
            if magic == b"wOFF":
                return {"format": "woff", **_sfnt(fh, 0, size, woff=True)}
        except struct.error as exc:
            raise ExtractorError(f"truncated font: {exc}") from None
        if magic == b"wOF2":  # brotli-compressed tables: the header only
            flavor, length, num_tables = struct.unpack_from(">4sIH", head, 4)
            return {"format": "woff2", "flavor": SFNT_MAGICS.get(flavor, flavor.decode("latin-1")),
                    "n_tables": num_tables, "length": length}
    if head.startswith((b"StartFontMetrics", b"%!PS-AdobeFont", b"%!FontType1", b"\x80\x01")):
        return _text_font(path, head)
    raise NotMyFormat("no font signature")


FONTS = Extractor(
    name=NAME,
    version=VERSION,
    func=extract_fonts,
    extensions=frozenset({"ttf", "otf", "ttc", "otc", "woff", "woff2", "afm", "pfa", "pfb", "dfont"}),
    mimes=frozenset({"font/ttf", "font/otf", "font/collection", "font/woff", "font/woff2",
                     "application/x-font-afm", "application/x-font-type1", "application/x-font-ttf"}),
    kind="any",
    sniff=sniff_font,
)
