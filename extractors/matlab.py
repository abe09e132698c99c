"""MATLAB .mat files (v4, v5/v6/v7, v7.3): variable names, classes and shapes, without loading arrays.

The home format of the original Xtract's matio extractor. v5 files are walked
element by element: each top-level variable's tag gives its size, so the reader
seeks over the data; a compressed (miCOMPRESSED, v7) variable is inflated only
as far as its header (array flags, dimensions, name, struct field names), at most
``HEADER_WINDOW`` bytes, so neither a 10 GB array nor a zlib bomb is ever expanded.
v4 files have a 20-byte header per variable and are seeked over the same way. v7.3
files are HDF5 behind a 512-byte MATLAB header: h5py lists the root's datasets and
groups with their ``MATLAB_class`` attributes (dimensions reported in MATLAB order).
Nothing here calls scipy.io.loadmat, which would load every array.
"""

from __future__ import annotations

import os
import re
import struct
import zlib
from typing import IO, Any

from extractors.base import Extractor, ExtractorError, NotMyFormat, PartialMetadata

NAME = "matlab"
VERSION = "1.0"
MAX_VARIABLES = 2_000
MAX_FIELDS = 200
#: Bytes of a compressed variable inflated to read its header (flags, dims, name, field names).
HEADER_WINDOW = 64 * 1024
MAX_NDIMS = 64

MI_INT8, MI_UINT8, MI_INT16, MI_UINT16, MI_INT32, MI_UINT32 = 1, 2, 3, 4, 5, 6
MI_MATRIX, MI_COMPRESSED = 14, 15
CLASSES = {1: "cell", 2: "struct", 3: "object", 4: "char", 5: "sparse", 6: "double", 7: "single", 8: "int8",
           9: "uint8", 10: "int16", 11: "uint16", 12: "int32", 13: "uint32", 14: "int64", 15: "uint64",
           16: "function_handle", 17: "opaque"}
V4_TYPES = {0: ("double", 8), 1: ("single", 4), 2: ("int32", 4), 3: ("int16", 2), 4: ("uint16", 2), 5: ("uint8", 1)}
_HEADER_FIELDS = re.compile(r"(Platform|Created on|Created by)\s*:\s*([^,]+?)\s*(?:,|$)")


def _header_text(raw: bytes) -> dict[str, Any]:
    text = raw[:116].rstrip(b"\x00 ").decode("latin-1")
    out: dict[str, Any] = {"header_text": text}
    for key, value in _HEADER_FIELDS.findall(text):
        out[key.lower().replace(" ", "_")] = value
    return out


def _tag(buf: bytes, pos: int, e: str) -> tuple[int, int, int, int]:
    """(type, nbytes, data offset, next element offset) of the element at ``pos`` in ``buf``."""
    if pos + 8 > len(buf):
        raise EOFError
    first, second = struct.unpack_from(e + "II", buf, pos)
    if first >> 16:  # small data element: type and size packed in 4 bytes, data in the next 4
        return first & 0xFFFF, first >> 16, pos + 4, pos + 8
    return first, second, pos + 8, pos + 8 + second + (-second % 8)


def _matrix_header(buf: bytes, e: str) -> dict[str, Any]:
    """Class, dims, name (and struct fields) from the start of a miMATRIX element's content."""
    out: dict[str, Any] = {}
    t, n, d, pos = _tag(buf, 0, e)
    if t != MI_UINT32 or n < 8 or d + 8 > len(buf):
        raise ExtractorError("array flags missing")
    flags0 = struct.unpack_from(e + "I", buf, d)[0]
    cls = flags0 & 0xFF
    out["class"] = CLASSES.get(cls, f"class{cls}")
    if flags0 & 0x0800:
        out["complex"] = True
    if flags0 & 0x0200:
        out["logical"] = True
    if flags0 & 0x0400:
        out["global"] = True
    if cls == 5 and d + 8 <= len(buf):
        out["nnz_max"] = struct.unpack_from(e + "I", buf, d + 4)[0]
    t, n, d, pos = _tag(buf, pos, e)
    if t != MI_INT32 or n % 4 or n // 4 > MAX_NDIMS or d + n > len(buf):
        raise ExtractorError("dimensions missing")
    out["shape"] = list(struct.unpack_from(e + f"{n // 4}i", buf, d))
    t, n, d, pos = _tag(buf, pos, e)
    if d + n > len(buf):
        raise EOFError
    out["name"] = buf[d : d + n].decode("utf-8", errors="replace")
    if cls == 3:  # object: class name, then fields as a struct
        t, n, d, pos = _tag(buf, pos, e)
        out["object_class"] = buf[d : d + n].decode("utf-8", errors="replace")
    if cls in (2, 3):
        t, n, d, pos = _tag(buf, pos, e)
        width = struct.unpack_from(e + "i", buf, d)[0] if n >= 4 else 0
        t, n, d, pos = _tag(buf, pos, e)
        if width > 0:
            raw = buf[d : d + min(n, width * MAX_FIELDS)]
            out["fields"] = [raw[i : i + width].split(b"\x00", 1)[0].decode("utf-8", errors="replace")
                             for i in range(0, len(raw), width)]
            out["n_fields"] = n // width
    if cls == 17:
        out["class"] = "opaque"
    return out


def _inflate_head(fh: IO[bytes], nbytes: int) -> bytes:
    """At most HEADER_WINDOW bytes of a compressed element, reading only as much as that takes."""
    z = zlib.decompressobj()
    out = b""
    left = nbytes
    while left > 0 and len(out) < HEADER_WINDOW:
        chunk = fh.read(min(16384, left))
        if not chunk:
            break
        left -= len(chunk)
        out += z.decompress(chunk, HEADER_WINDOW - len(out))
        if z.eof:
            break
    return out


def _v5(path: str, fh: IO[bytes], header: bytes, size: int) -> dict[str, Any]:
    e = "<" if header[126:128] == b"IM" else ">"
    out = {"format": "mat", "version": "5", "endian": "little" if e == "<" else "big", **_header_text(header)}
    subsys = header[116:124]
    if subsys.strip(b"\x00 "):
        out["has_subsystem_data"] = True
    variables: list[dict[str, Any]] = []
    pos, n_vars, truncated, compressed = 128, 0, False, 0
    while pos + 8 <= size:
        fh.seek(pos)
        raw = fh.read(8)
        if len(raw) < 8:
            break
        t, n = struct.unpack(e + "II", raw)
        if t >> 16:  # a small element at top level: nothing to describe
            pos += 8
            continue
        end = pos + 8 + n + (-n % 8 if t != MI_COMPRESSED else 0)
        if t == 0 and n == 0:
            break  # zero padding at the end
        if end > size:
            truncated = True
        n_vars += 1
        if len(variables) < MAX_VARIABLES:
            if t == MI_COMPRESSED:
                compressed += 1
                try:
                    inner = _inflate_head(fh, n)
                except zlib.error as exc:
                    variables.append({"error": f"zlib: {exc}"})
                    pos = end
                    continue
                try:
                    it, _, idata, _ = _tag(inner, 0, e)
                    var = _matrix_header(inner[idata:], e) if it == MI_MATRIX else {"mi_type": it}
                except (EOFError, ExtractorError, struct.error) as exc:
                    var = {"error": f"unreadable variable header: {exc or type(exc).__name__}"}
            elif t == MI_MATRIX:
                try:
                    var = _matrix_header(fh.read(min(n, HEADER_WINDOW)), e)
                except (EOFError, ExtractorError, struct.error) as exc:
                    var = {"error": f"unreadable variable header: {exc or type(exc).__name__}"}
            else:
                var = {"mi_type": t, "bytes": n}
            var["bytes"] = n
            variables.append(var)
        pos = end
    if n_vars == 0 and not out.get("header_text", "").startswith("MATLAB"):
        raise NotMyFormat("no MATLAB header and no variables")
    out.update(n_variables=n_vars, compressed_variables=compressed, variables=variables)
    if truncated:
        out["truncated"] = True
    if variables and all("error" in v for v in variables):
        raise PartialMetadata("damaged MAT-file: no variable header is readable", out)
    return out


def _v4_header(raw: bytes) -> tuple[str, tuple[int, int, int, int, int]] | None:
    for e in ("<", ">"):
        mopt, mrows, ncols, imagf, namlen = struct.unpack(e + "5i", raw)
        m, o, p, t = mopt // 1000, mopt // 100 % 10, mopt // 10 % 10, mopt % 10
        if (0 <= mopt < 5000 and m in (0, 1) and o == 0 and p in V4_TYPES and t in (0, 1, 2) and mrows >= 0
                and ncols >= 0 and imagf in (0, 1) and 0 < namlen < 256):
            return e, (mopt, mrows, ncols, imagf, namlen)
    return None


def _v4(path: str, fh: IO[bytes], size: int) -> dict[str, Any]:
    variables: list[dict[str, Any]] = []
    pos, truncated, endian = 0, False, None
    while pos + 20 <= size and len(variables) < MAX_VARIABLES:
        fh.seek(pos)
        parsed = _v4_header(fh.read(20))
        if parsed is None:
            if not variables:
                raise NotMyFormat("neither a MATLAB 5 header nor a MATLAB 4 variable header")
            break
        e, (mopt, mrows, ncols, imagf, namlen) = parsed
        endian = endian or ("little" if e == "<" else "big")
        name = fh.read(namlen).split(b"\x00", 1)[0].decode("latin-1")
        ptype, width = V4_TYPES[mopt // 10 % 10]
        kind = mopt % 10
        data = mrows * ncols * width * (2 if imagf else 1)
        var = {"name": name, "class": "char" if kind == 1 else ("sparse" if kind == 2 else ptype),
               "shape": [mrows, ncols], "bytes": data}
        if imagf:
            var["complex"] = True
        variables.append(var)
        pos += 20 + namlen + data
        if pos > size:
            truncated = True
            break
    if not variables:
        raise NotMyFormat("no MATLAB 4 variables")
    out: dict[str, Any] = {"format": "mat", "version": "4", "endian": endian, "n_variables": len(variables),
                           "variables": variables}
    if truncated:
        out["truncated"] = True
    return out


def _v73(path: str, header: bytes) -> dict[str, Any]:
    try:
        import h5py
    except ImportError:
        raise ExtractorError("MATLAB 7.3 files are HDF5: install the science extra (h5py)") from None
    out = {"format": "mat", "version": "7.3", **_header_text(header)}
    variables: list[dict[str, Any]] = []
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise ExtractorError(f"damaged MATLAB 7.3 (HDF5) file: {exc}") from None
    with f:
        for name in list(f.keys())[:MAX_VARIABLES]:
            if name.startswith("#"):  # #refs# and #subsystem#: MATLAB's internal storage
                continue
            obj = f[name]
            cls = obj.attrs.get("MATLAB_class", b"")
            cls = cls.decode() if isinstance(cls, bytes) else str(cls)
            var: dict[str, Any] = {"name": name, "class": cls or ("struct" if isinstance(obj, h5py.Group) else "")}
            if isinstance(obj, h5py.Dataset):
                var["shape"] = list(obj.shape[::-1])  # MATLAB is column-major: h5py shows the dims reversed
                if obj.attrs.get("MATLAB_empty"):
                    var["shape"] = [0, 0]
                var["hdf5_dtype"] = str(obj.dtype)
            else:
                var["fields"] = list(obj.keys())[:MAX_FIELDS]
            variables.append(var)
    out.update(n_variables=len(variables), variables=variables)
    return out


def extract_matlab(path: str) -> dict[str, Any]:
    size = os.path.getsize(path)
    if size == 0:
        raise ExtractorError("empty file")
    with open(path, "rb") as fh:
        header = fh.read(128)
        fh.seek(512)
        if fh.read(8) == b"\x89HDF\r\n\x1a\n":
            return _v73(path, header)
        if len(header) == 128 and header[124:126] in (b"\x00\x01", b"\x01\x00") and header[126:128] in (b"IM",
                                                                                                    b"MI"):
            return _v5(path, fh, header, size)
        if header[:4] == b"\x89HDF":
            raise NotMyFormat("plain HDF5, not a MATLAB file")
        return _v4(path, fh, size)


MATLAB = Extractor(
    name=NAME,
    version=VERSION,
    func=extract_matlab,
    extensions=frozenset({"mat"}),
    mimes=frozenset({"application/x-matlab-data"}),
    kind="any",
    accepts=frozenset({"application/x-hdf5"}),
    preload=("h5py",),
)
