"""IDL save files (.sav): variables with types and dimensions, the saving IDL version, date, user, host.

scipy.io.readsav reads every array; this reader walks the record chain instead:
each record header gives the offset of the next, so only the start of each record
(name, type descriptor, array descriptor, structure tag names) is read, at most
``RECORD_WINDOW`` bytes, and a compressed file inflates only that much of each
record. Heap data and array contents are never read. Record and variable counts
are capped, and a chain that loops or points past the file ends the walk.
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from typing import IO, Any

from extractors.base import Extractor, ExtractorError, NotMyFormat, PartialMetadata

NAME = "idl"
VERSION = "1.0"
RECORD_WINDOW = 64 * 1024
MAX_RECORDS = 100_000
MAX_VARIABLES = 2_000
MAX_TAGS = 200
RECTYPES = {0: "START_MARKER", 1: "COMMON_VARIABLE", 2: "VARIABLE", 3: "SYSTEM_VARIABLE", 6: "END_MARKER",
            10: "TIMESTAMP", 12: "COMPILED", 13: "IDENTIFICATION", 14: "VERSION", 15: "HEAP_HEADER",
            16: "HEAP_DATA", 17: "PROMOTE64", 19: "NOTICE", 20: "DESCRIPTION"}
TYPECODES = {0: "undefined", 1: "byte", 2: "int16", 3: "int32", 4: "float32", 5: "float64", 6: "complex64",
             7: "string", 8: "structure", 9: "complex128", 10: "pointer", 11: "object", 12: "uint16",
             13: "uint32", 14: "int64", 15: "uint64"}


def sniff_idl(head: bytes) -> bool:
    return head[:2] == b"SR" and head[2:4] in (b"\x00\x04", b"\x00\x06")


def _long(f: IO[bytes]) -> int:
    raw = f.read(4)
    if len(raw) < 4:
        raise EOFError("record cut short")
    return struct.unpack(">l", raw)[0]


def _string(f: IO[bytes]) -> str:
    n = _long(f)
    if n <= 0:
        return ""
    if n > RECORD_WINDOW:
        raise ExtractorError(f"implausible string length {n}")
    raw = f.read(n)
    f.read(-n % 4)
    return raw.decode("latin-1")


def _arraydesc(f: IO[bytes]) -> dict[str, Any]:
    start = _long(f)
    if start == 8:
        f.read(4)
        nbytes, nelements, ndims = _long(f), _long(f), _long(f)
        f.read(8)
        nmax = _long(f)
        dims = [_long(f) for _ in range(min(max(nmax, 0), 8))]
    elif start == 18:  # 64-bit array descriptor
        f.read(8)
        nbytes, nelements = struct.unpack(">QQ", f.read(16))
        ndims = _long(f)
        f.read(8)
        dims = list(struct.unpack(">8Q", f.read(64)))
    else:
        raise ExtractorError(f"unknown array descriptor start {start}")
    # IDL dims are column-major, first fastest: report them as IDL prints them
    return {"dims": dims[: max(0, min(ndims, 8))], "n_elements": nelements, "nbytes": nbytes}


def _structdesc(f: IO[bytes]) -> dict[str, Any]:
    if _long(f) != 9:
        raise ExtractorError("bad structure descriptor")
    out: dict[str, Any] = {"struct_name": _string(f)}
    predef = _long(f)
    ntags, _ = _long(f), _long(f)
    out["n_tags"] = ntags
    if not predef & 1 and 0 <= ntags <= 10_000:
        types = []
        for _ in range(ntags):
            offset = _long(f)
            if offset == -1:
                f.read(8)
            types.append(_long(f))
            _long(f)
        names = [_string(f) for _ in range(min(ntags, MAX_TAGS))]
        out["tags"] = [{"name": n, "type": TYPECODES.get(t, str(t))} for n, t in zip(names, types, strict=False)]
    return out


def _typedesc(f: IO[bytes]) -> dict[str, Any]:
    typecode, flags = _long(f), _long(f)
    out: dict[str, Any] = {"type": TYPECODES.get(typecode, f"type{typecode}")}
    if flags & 2:
        out["system"] = True
        return out
    if flags & 32:
        out.update(_arraydesc(f))
        out.update(_structdesc(f))
    elif flags & 4:
        out.update(_arraydesc(f))
    else:
        out["scalar"] = True
    return out


def extract_idl(path: str) -> dict[str, Any]:
    size = os.path.getsize(path)
    out: dict[str, Any] = {"format": "idl-save"}
    variables: list[dict[str, Any]] = []
    counts: dict[str, int] = {}
    with open(path, "rb") as fh:
        head = fh.read(4)
        if not sniff_idl(head):
            raise NotMyFormat("no IDL save signature (SR)")
        compressed = head[2:4] == b"\x00\x06"
        out["compressed"] = compressed
        pos, seen, ended = 4, 0, False
        try:
            while pos + 16 <= size and seen < MAX_RECORDS:
                fh.seek(pos)
                rectype, lo, hi, _ = struct.unpack(">lIII", fh.read(16))
                nextrec = lo + (hi << 32)
                kind = RECTYPES.get(rectype)
                if kind is None:
                    raise ExtractorError(f"unknown record type {rectype} at offset {pos}")
                seen += 1
                counts[kind] = counts.get(kind, 0) + 1
                if kind == "END_MARKER":
                    ended = True
                    break
                if nextrec <= pos or nextrec > size:
                    raise ExtractorError(f"record at {pos} points to {nextrec}: chain broken")
                if compressed:
                    z = zlib.decompressobj()
                    body = z.decompress(fh.read(min(nextrec - pos - 16, 4 * RECORD_WINDOW)), RECORD_WINDOW)
                else:
                    body = fh.read(min(nextrec - pos - 16, RECORD_WINDOW))
                rec = io.BytesIO(body)
                try:
                    if kind in ("VARIABLE", "SYSTEM_VARIABLE") and len(variables) < MAX_VARIABLES:
                        name = _string(rec)
                        variables.append({"name": name, **_typedesc(rec)})
                    elif kind == "TIMESTAMP":
                        rec.read(4 * 256)
                        out["date"], out["user"], out["host"] = _string(rec), _string(rec), _string(rec)
                    elif kind == "VERSION":
                        fmt = _long(rec)
                        out["idl_version"] = {"format": fmt, "arch": _string(rec), "os": _string(rec),
                                              "release": _string(rec)}
                    elif kind == "IDENTIFICATION":
                        out["identification"] = {"author": _string(rec), "title": _string(rec),
                                                 "idcode": _string(rec)}
                    elif kind == "NOTICE":
                        out["notice"] = _string(rec)[:1000]
                    elif kind == "DESCRIPTION":
                        out["description"] = _string(rec)[:1000]
                    elif kind == "COMMON_VARIABLE":
                        ncommon, name = _long(rec), _string(rec)
                        out.setdefault("common_blocks", []).append(
                            {"name": name, "variables": [_string(rec) for _ in range(min(ncommon, 200))]})
                except (EOFError, ExtractorError, struct.error) as exc:
                    if kind == "VARIABLE" and (not variables or "name" not in variables[-1]):
                        variables.append({"error": str(exc)})
                    elif kind == "VARIABLE":
                        variables[-1]["error"] = f"descriptor unreadable: {exc}"
                pos = nextrec
        except (ExtractorError, zlib.error, struct.error) as exc:
            out.update(variables=variables, n_variables=counts.get("VARIABLE", 0), records=counts)
            if variables or len(out) > 2:
                raise PartialMetadata(f"damaged IDL save file: {exc}", out) from None
            raise ExtractorError(f"damaged IDL save file: {exc}") from None
    out.update(variables=variables, n_variables=counts.get("VARIABLE", 0), records=counts)
    if not ended:
        out["truncated"] = True
    return out


IDL = Extractor(
    name=NAME,
    version=VERSION,
    func=extract_idl,
    extensions=frozenset({"sav", "idlsave"}),
    mimes=frozenset({"application/x-idl-save"}),
    kind="any",
    sniff=sniff_idl,
)
