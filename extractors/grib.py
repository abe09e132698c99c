"""GRIB editions 1 and 2 (grib, grb, grib2, grb2): messages, parameters, levels, grids, times.

A GRIB file is a run of self-delimiting messages; each starts with ``GRIB`` and
its total length, so the reader visits the identification, grid and product
sections of every message and seeks over the packed data. Parameters are named
from the common WMO (and ECMWF local) table entries and otherwise reported by
their discipline/category/number. No eccodes needed. Messages are capped at
``MAX_MESSAGES``; garbage between messages is skipped up to ``RESYNC_BYTES``.
"""

from __future__ import annotations

import os
import struct
from collections import Counter
from datetime import datetime
from typing import IO, Any

from extractors.base import Extractor, ExtractorError, NotMyFormat

NAME = "grib"
VERSION = "1.0"
MAX_MESSAGES = 100_000
RESYNC_BYTES = 64 * 1024
MAX_LIST = 200

#: GRIB2 (discipline, category, number) -> short name (WMO code table 4.2, the common entries).
GRIB2_PARAMS = {
    (0, 0, 0): "t", (0, 0, 2): "pt", (0, 0, 4): "tmax", (0, 0, 5): "tmin", (0, 0, 6): "dpt", (0, 1, 0): "q",
    (0, 1, 1): "r", (0, 1, 3): "pwat", (0, 1, 7): "prate", (0, 1, 8): "tp", (0, 1, 11): "sde", (0, 1, 13): "sdwe",
    (0, 2, 0): "wdir", (0, 2, 1): "ws", (0, 2, 2): "u", (0, 2, 3): "v", (0, 2, 8): "w", (0, 2, 10): "absv",
    (0, 2, 22): "gust", (0, 3, 0): "pres", (0, 3, 1): "prmsl", (0, 3, 4): "z", (0, 3, 5): "gh", (0, 3, 18): "blh",
    (0, 6, 1): "tcc", (0, 7, 6): "cape", (0, 7, 7): "cin", (0, 4, 7): "dswrf", (0, 5, 3): "dlwrf",
    (0, 14, 0): "tozne", (2, 0, 0): "lsm", (2, 0, 7): "orog", (10, 3, 0): "sst", (10, 2, 0): "ci",
}
#: GRIB1 table 2 (WMO) and ECMWF table 128 parameter numbers.
GRIB1_WMO = {1: "pres", 2: "prmsl", 7: "gh", 11: "t", 17: "dpt", 33: "u", 34: "v", 39: "w", 51: "q", 52: "r",
             61: "tp", 65: "sdwe", 71: "tcc", 81: "lsm"}
GRIB1_ECMWF = {129: "z", 130: "t", 131: "u", 132: "v", 133: "q", 134: "sp", 135: "w", 138: "vo", 151: "msl",
               155: "d", 157: "r", 164: "tcc", 165: "10u", 166: "10v", 167: "2t", 168: "2d", 172: "lsm",
               228: "tp", 235: "skt"}
LEVELS = {1: "surface", 2: "cloud_base", 3: "cloud_top", 4: "0C_isotherm", 6: "max_wind", 7: "tropopause",
          8: "top_of_atmosphere", 100: "isobaric", 101: "mean_sea", 102: "altitude_above_msl",
          103: "height_above_ground", 104: "sigma", 105: "hybrid", 106: "depth_below_land", 107: "isentropic",
          108: "pressure_difference", 109: "potential_vorticity", 111: "eta", 160: "depth_below_sea",
          200: "entire_atmosphere", 255: "missing"}
LEVELS1 = {1: "surface", 100: "isobaric", 102: "mean_sea", 103: "altitude_above_msl", 105: "height_above_ground",
           107: "sigma", 109: "hybrid", 111: "depth_below_land", 113: "isentropic", 200: "entire_atmosphere"}
GRIDS2 = {0: "regular_ll", 1: "rotated_ll", 10: "mercator", 20: "polar_stereographic", 30: "lambert",
          40: "regular_gg", 50: "sh", 90: "space_view", 101: "unstructured"}
GRIDS1 = {0: "regular_ll", 1: "mercator", 3: "lambert", 4: "regular_gg", 5: "polar_stereographic",
          10: "rotated_ll", 50: "sh"}


def sniff_grib(head: bytes) -> bool:
    return head[:4] == b"GRIB" and len(head) > 8 and head[7] in (1, 2)


def _s24(b: bytes) -> int:
    v = int.from_bytes(b, "big")
    return -(v & 0x7FFFFF) if v & 0x800000 else v


def _s32(b: bytes) -> int:
    v = int.from_bytes(b, "big")
    return -(v & 0x7FFFFFFF) if v & 0x80000000 else v


def _grib2(msg: bytes) -> dict[str, Any]:
    out: dict[str, Any] = {"edition": 2, "discipline": msg[6]}
    pos = 16
    while pos + 5 <= len(msg) and msg[pos : pos + 4] != b"7777":
        slen, num = struct.unpack_from(">IB", msg, pos)
        if slen < 5:
            break
        s = msg[pos : pos + slen]
        if num == 1 and len(s) >= 21:
            out["centre"] = struct.unpack_from(">H", s, 5)[0]
            y, mo, d, h, mi, se = struct.unpack_from(">HBBBBB", s, 12)
            out["reference_time"] = f"{y:04d}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{se:02d}"
            out["data_type"] = s[20]
        elif num == 3 and len(s) >= 14:
            out["n_points"] = struct.unpack_from(">I", s, 6)[0]
            tmpl = struct.unpack_from(">H", s, 12)[0]
            out["grid"] = GRIDS2.get(tmpl, f"template_3.{tmpl}")
            if tmpl in (0, 1, 40) and len(s) >= 72:
                ni, nj = struct.unpack_from(">II", s, 30)
                out["shape"] = [nj, ni]
                out["lat_first"], out["lon_first"] = _s32(s[46:50]) / 1e6, _s32(s[50:54]) / 1e6
                out["lat_last"], out["lon_last"] = _s32(s[55:59]) / 1e6, _s32(s[59:63]) / 1e6
        elif num == 4 and len(s) >= 34:
            tmpl = struct.unpack_from(">H", s, 7)[0]
            cat, number = s[9], s[10]
            out["parameter"] = GRIB2_PARAMS.get((out["discipline"], cat, number),
                                                f"{out['discipline']}.{cat}.{number}")
            if tmpl in (0, 1, 8, 11):
                out["forecast_time"] = _s32(s[18:22])
                out["forecast_time_unit"] = s[17]
                ltype, scale, value = s[22], s[23], _s32(s[24:28])
                out["level_type"] = LEVELS.get(ltype, str(ltype))
                if ltype != 255 and value != -0x7FFFFFFF:
                    sc = scale - 256 if scale > 127 else scale
                    out["level"] = value / 10 ** sc if sc else value
        pos += slen
    return out


def _grib1(msg: bytes) -> dict[str, Any]:
    pds_len = int.from_bytes(msg[8:11], "big")
    p = msg[8 : 8 + pds_len]
    if len(p) < 28:
        raise ExtractorError("GRIB1 product section cut short")
    table, centre, flag, param, ltype = p[3], p[4], p[7], p[8], p[9]
    names = GRIB1_ECMWF if table == 128 or centre == 98 and table >= 128 else GRIB1_WMO
    out: dict[str, Any] = {"edition": 1, "centre": centre, "table_version": table,
                           "parameter": names.get(param, f"table{table}.{param}"),
                           "level_type": LEVELS1.get(ltype, str(ltype))}
    if ltype in (100, 103, 105, 109, 111, 113, 107):
        out["level"] = int.from_bytes(p[10:12], "big")
    century = p[24] or 21
    year = (century - 1) * 100 + p[12]
    out["reference_time"] = f"{year:04d}-{p[13]:02d}-{p[14]:02d}T{p[15]:02d}:{p[16]:02d}:00"
    out["forecast_time"], out["forecast_time_unit"] = p[18], p[17]
    if flag & 0x80:
        g = msg[8 + pds_len : 8 + pds_len + 32]
        if len(g) >= 16:
            out["grid"] = GRIDS1.get(g[5], f"type{g[5]}")
            if g[5] in (0, 4, 10):
                ni, nj = struct.unpack_from(">HH", g, 6)
                out["shape"] = [nj, ni]
                out["lat_first"], out["lon_first"] = _s24(g[10:13]) / 1e3, _s24(g[13:16]) / 1e3
    return out


def _find(fh: IO[bytes], pos: int) -> int | None:
    fh.seek(pos)
    window = fh.read(RESYNC_BYTES)
    i = window.find(b"GRIB")
    return None if i < 0 else pos + i


def extract_grib(path: str) -> dict[str, Any]:
    size = os.path.getsize(path)
    messages: list[dict[str, Any]] = []
    n, truncated, pos = 0, False, 0
    with open(path, "rb") as fh:
        while pos < size and n < MAX_MESSAGES:
            start = _find(fh, pos)
            if start is None:
                break
            fh.seek(start)
            head = fh.read(16)
            if len(head) < 8:
                break
            edition = head[7]
            if edition == 2 and len(head) == 16:
                total = struct.unpack_from(">Q", head, 8)[0]
                keep = min(total, 1 << 16)
            elif edition == 1:
                total = int.from_bytes(head[4:7], "big")
                keep = min(total, 512)
            else:
                pos = start + 4
                continue
            if total < 16:
                pos = start + 4
                continue
            if start + total > size:
                truncated = True
            fh.seek(start)
            msg = fh.read(keep)
            try:
                info = _grib2(msg) if edition == 2 else _grib1(msg)
            except (struct.error, IndexError, ExtractorError) as exc:
                info = {"edition": edition, "error": str(exc)[:200]}
            n += 1
            if len(messages) < MAX_LIST:
                messages.append({"offset": start, "length": total, **info})
            else:
                messages.append({k: info.get(k) for k in ("parameter", "level_type", "level", "reference_time",
                                                          "forecast_time")})
            pos = start + total
    if n == 0:
        raise NotMyFormat("no GRIB message")
    params = Counter(m.get("parameter") for m in messages if m.get("parameter"))
    levels = Counter(f"{m.get('level_type')}:{m.get('level')}" if m.get("level") is not None else
                     str(m.get("level_type")) for m in messages if m.get("level_type"))
    times = sorted({m["reference_time"] for m in messages if m.get("reference_time")})
    out: dict[str, Any] = {
        "format": "grib", "n_messages": n, "editions": sorted({m.get("edition") for m in messages if m.get("edition")}),
        "parameters": dict(params.most_common(MAX_LIST)), "levels": dict(levels.most_common(MAX_LIST)),
        "reference_times": times[:MAX_LIST],
        "forecast_times": sorted({m["forecast_time"] for m in messages if m.get("forecast_time") is not None})[
            :MAX_LIST],
        "grids": sorted({f"{m.get('grid')}{m.get('shape', '')}" for m in messages if m.get("grid")})[:MAX_LIST],
        "centres": sorted({m["centre"] for m in messages if m.get("centre") is not None}),
        "messages": [m for m in messages[:MAX_LIST]],
    }
    if times:
        try:
            out["time_range"] = [datetime.fromisoformat(times[0]).isoformat(), datetime.fromisoformat(
                times[-1]).isoformat()]
        except ValueError:
            pass
    if truncated:
        out["truncated"] = True
    return out


GRIB = Extractor(
    name=NAME,
    version=VERSION,
    func=extract_grib,
    extensions=frozenset({"grib", "grb", "grib1", "grib2", "grb2", "gb2"}),
    mimes=frozenset({"application/x-grib", "application/x-grib2"}),
    kind="any",
    sniff=sniff_grib,
)
