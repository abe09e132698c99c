"""NASA CDF (Common Data Format, v3; the .cdf of heliophysics and space physics, not netCDF).

The descriptor records form linked lists from the global descriptor record: the
reader follows them (r/z variable descriptors: name, data type, dimensions, max
record; attribute descriptors: name, scope; the first entry of each global
attribute: its text or number) and never touches variable data. Offsets are
checked against the file size and every list is capped, so a loop or a wild
pointer ends the walk. A compressed file (whole-file compression) reports only
that. No cdflib needed.
"""

from __future__ import annotations

import os
import struct
from typing import IO, Any

from extractors.base import Extractor, ExtractorError, NotMyFormat

NAME = "nasa_cdf"
VERSION = "1.0"
MAX_ITEMS = 2_000
DATA_TYPES = {1: "int1", 2: "int2", 4: "int4", 8: "int8", 11: "uint1", 12: "uint2", 14: "uint4", 21: "real4",
              22: "real8", 31: "epoch", 32: "epoch16", 33: "tt2000", 41: "byte", 44: "float", 45: "double",
              51: "char", 52: "uchar"}
_NUM = {1: ">b", 2: ">h", 4: ">i", 8: ">q", 11: ">B", 12: ">H", 14: ">I", 21: ">f", 22: ">d", 41: ">b", 44: ">f",
        45: ">d", 31: ">d", 33: ">q"}


def sniff_cdf(head: bytes) -> bool:
    return head[:4] in (b"\xcd\xf3\x00\x01", b"\xcd\xf2\x60\x02", b"\x00\x00\xff\xff")


def _read(fh: IO[bytes], offset: int, n: int, size: int) -> bytes:
    if offset <= 0 or offset + n > size + n or offset >= size:
        raise ExtractorError(f"record offset {offset} outside the file")
    fh.seek(offset)
    return fh.read(n)


def _name(raw: bytes) -> str:
    return raw.split(b"\x00", 1)[0].decode("latin-1").strip()


def _entry_value(fh: IO[bytes], offset: int, size: int) -> Any:
    rec = _read(fh, offset, 56 + 512, size)
    dtype, _, nelems = struct.unpack_from(">iii", rec, 24)
    value = rec[56:]
    if dtype in (51, 52):
        return value[: min(nelems, 500)].split(b"\x00", 1)[0].decode("latin-1").strip()
    fmt = _NUM.get(dtype)
    if fmt and nelems >= 1:
        width = struct.calcsize(fmt)
        vals = [struct.unpack_from(fmt, value, i * width)[0] for i in range(min(nelems, 8)) if (i + 1) * width <= len(
            value)]
        return vals[0] if len(vals) == 1 else vals
    return None


def extract_nasa_cdf(path: str) -> dict[str, Any]:
    size = os.path.getsize(path)
    with open(path, "rb") as fh:
        magic = fh.read(8)
        if magic[:4] != b"\xcd\xf3\x00\x01":
            if sniff_cdf(magic):
                return {"format": "cdf", "version": 2, "note": "CDF 2.x: descriptors not read"}
            raise NotMyFormat("no NASA CDF magic number")
        if magic[4:8] == b"\xcc\xcc\x00\x01":
            return {"format": "cdf", "version": 3, "compressed": True}
        cdr = _read(fh, 8, 312, size)
        _, rtype, gdr_off, version, release, encoding, flags = struct.unpack_from(">qiqiiii", cdr, 0)
        if rtype != 1:
            raise ExtractorError("CDF descriptor record missing")
        out: dict[str, Any] = {"format": "cdf", "version": f"{version}.{release}", "encoding": encoding,
                               "row_major": bool(flags & 1), "copyright": _name(cdr[56:312])[:200]}
        gdr = _read(fh, gdr_off, 84, size)
        (_, rtype, rvdr, zvdr, adr, eof, n_rvars, n_attrs, r_maxrec, r_ndims, n_zvars) = struct.unpack_from(
            ">qiqqqqiiiii", gdr, 0)
        if rtype != 2:
            raise ExtractorError("CDF global descriptor record missing")
        variables: list[dict[str, Any]] = []
        for head, kind in ((rvdr, "r"), (zvdr, "z")):
            off, seen = head, set()
            while off and off not in seen and len(variables) < MAX_ITEMS:
                seen.add(off)
                v = _read(fh, off, 344 + 4 * 11, size)
                nxt, dtype, maxrec = struct.unpack_from(">qii", v, 12)
                var: dict[str, Any] = {"name": _name(v[84:340]), "kind": kind,
                                       "type": DATA_TYPES.get(dtype, str(dtype)), "records": maxrec + 1}
                if kind == "z":
                    nd = struct.unpack_from(">i", v, 340)[0]
                    var["dims"] = list(struct.unpack_from(f">{min(max(nd, 0), 10)}i", v, 344))
                variables.append(var)
                off = nxt
        attrs_global: dict[str, Any] = {}
        attrs_var: list[str] = []
        off, seen = adr, set()
        while off and off not in seen and len(attrs_global) + len(attrs_var) < MAX_ITEMS:
            seen.add(off)
            a = _read(fh, off, 324, size)
            nxt, gr_head, scope = struct.unpack_from(">qqi", a, 12)
            name = _name(a[68:324])
            if scope in (1, 3):
                try:
                    attrs_global[name] = _entry_value(fh, gr_head, size) if gr_head else None
                except (ExtractorError, struct.error):
                    attrs_global[name] = None
            else:
                attrs_var.append(name)
            off = nxt
    out.update(n_variables=n_rvars + n_zvars, variables=variables, global_attributes=attrs_global,
               variable_attributes=attrs_var, n_attributes=n_attrs)
    if eof > size:
        out["truncated"] = True
    return out


NASA_CDF = Extractor(
    name=NAME,
    version=VERSION,
    func=extract_nasa_cdf,
    extensions=frozenset(),  # .cdf is shared with netCDF: netcdf refuses, the sniff finds this one
    mimes=frozenset({"application/x-cdf"}),
    kind="any",
    sniff=sniff_cdf,
)
