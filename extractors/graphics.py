"""PostScript/EPS and 3-D meshes (VTK legacy, PLY, STL, OFF): what their headers declare.

PostScript files describe themselves in DSC comments (``%%Title``, ``%%Creator``,
``%%BoundingBox``, ``%%Pages``) at the top; DOS EPS binaries wrap the same text.
Mesh formats open with a header that gives element counts and properties (PLY),
the dataset kind and point count (VTK), or the triangle count (binary STL). Only
the first ``HEAD_BYTES`` are read, except for ASCII STL, whose facets are counted
in a bounded stream.
"""

from __future__ import annotations

import os
import re
import struct
from typing import Any

from extractors.base import Extractor, ExtractorError, NotMyFormat

NAME = "graphics"
VERSION = "1.0"
HEAD_BYTES = 64 * 1024
MAX_STL_BYTES = 256 * 1024 * 1024
DSC_KEYS = ("Title", "Creator", "CreationDate", "For", "BoundingBox", "HiResBoundingBox", "Pages",
            "LanguageLevel", "DocumentData", "Orientation", "DocumentMedia")
_VTK_DATASET = re.compile(r"^DATASET\s+(\w+)", re.M | re.I)
_VTK_POINTS = re.compile(r"^POINTS\s+(\d+)\s+(\w+)", re.M | re.I)
_VTK_CELLS = re.compile(r"^(CELLS|POLYGONS|LINES|VERTICES|TRIANGLE_STRIPS)\s+(\d+)", re.M | re.I)
_VTK_DIMS = re.compile(r"^DIMENSIONS\s+(\d+)\s+(\d+)\s+(\d+)", re.M | re.I)


def sniff_graphics(head: bytes) -> bool:
    return head.startswith((b"%!PS", b"\xc5\xd0\xd3\xc6", b"# vtk DataFile", b"ply\n", b"ply\r\n", b"OFF\n",
                            b"solid "))


def _postscript(head: bytes) -> dict[str, Any]:
    if head[:4] == b"\xc5\xd0\xd3\xc6":  # DOS EPS: offset and length of the PostScript section
        start, length = struct.unpack_from("<II", head, 4)
        out: dict[str, Any] = {"format": "eps-binary", "postscript_bytes": length}
        head = head[start : start + HEAD_BYTES] if start < len(head) else b""
    else:
        out = {"format": "eps" if b"EPSF" in head.split(b"\n", 1)[0] else "postscript"}
    first = head.split(b"\n", 1)[0].decode("latin-1").strip()
    out["header"] = first[:100]
    for line in head.decode("latin-1").splitlines()[:2000]:
        if line.startswith("%%EndComments"):
            break
        if line.startswith("%%"):
            key, _, value = line[2:].partition(":")
            if key in DSC_KEYS and key not in out:
                value = value.strip().strip("()")
                if key.endswith("BoundingBox"):
                    try:
                        out[key] = [float(v) for v in value.split()[:4]]
                        continue
                    except ValueError:
                        pass
                out[key] = value[:300]
    return out


def _vtk(head: bytes) -> dict[str, Any]:
    lines = head.split(b"\n", 4)
    text = head.decode("latin-1")
    out: dict[str, Any] = {"format": "vtk-legacy", "version": lines[0].decode("latin-1").split()[-1],
                           "title": lines[1].decode("latin-1").strip()[:256] if len(lines) > 1 else "",
                           "encoding": lines[2].decode("latin-1").strip().lower() if len(lines) > 2 else None}
    for key, pat in (("dataset", _VTK_DATASET),):
        m = pat.search(text)
        if m:
            out[key] = m.group(1).upper()
    m = _VTK_POINTS.search(text)
    if m:
        out["points"], out["point_type"] = int(m.group(1)), m.group(2)
    m = _VTK_DIMS.search(text)
    if m:
        out["dimensions"] = [int(g) for g in m.groups()]
    cells = {k.upper(): int(n) for k, n in _VTK_CELLS.findall(text)}
    if cells:
        out["cells"] = cells
    return out


def _ply(head: bytes) -> dict[str, Any]:
    end = head.find(b"end_header")
    if end < 0:
        raise ExtractorError("PLY header without end_header")
    out: dict[str, Any] = {"format": "ply", "elements": {}, "comments": []}
    current = None
    for line in head[:end].decode("latin-1").splitlines()[1:]:
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "format" and len(parts) >= 3:
            out["encoding"], out["version"] = parts[1], parts[2]
        elif parts[0] == "element" and len(parts) >= 3:
            current = parts[1]
            out["elements"][current] = {"count": int(parts[2]) if parts[2].isdigit() else parts[2],
                                        "properties": []}
        elif parts[0] == "property" and current and len(out["elements"][current]["properties"]) < 100:
            out["elements"][current]["properties"].append(parts[-1])
        elif parts[0] in ("comment", "obj_info") and len(out["comments"]) < 20:
            out["comments"].append(" ".join(parts[1:])[:200])
    return out


def _stl(path: str, head: bytes) -> dict[str, Any]:
    size = os.path.getsize(path)
    if len(head) >= 84:
        n = struct.unpack_from("<I", head, 80)[0]
        if 84 + 50 * n == size:
            return {"format": "stl-binary", "triangles": n,
                    "header": head[:80].split(b"\x00", 1)[0].decode("latin-1").strip()[:80]}
    if not head.startswith(b"solid"):
        raise NotMyFormat("not an STL file")
    facets, read = 0, 0
    with open(path, "rb") as fh:
        while read < MAX_STL_BYTES and (block := fh.read(1 << 20)):
            facets += block.count(b"facet normal")
            read += len(block)
    name = head.split(b"\n", 1)[0][5:].decode("latin-1").strip()
    return {"format": "stl-ascii", "name": name[:200], "triangles": facets, "counted_bytes": read}


def _off(head: bytes) -> dict[str, Any]:
    lines = [ln for ln in head.decode("latin-1").splitlines()[1:20] if ln.strip() and not ln.startswith("#")]
    counts = lines[0].split() if lines else []
    if len(counts) < 2 or not all(c.isdigit() for c in counts[:3]):
        raise ExtractorError("OFF header without counts")
    return {"format": "off", "vertices": int(counts[0]), "faces": int(counts[1])}


def extract_graphics(path: str) -> dict[str, Any]:
    with open(path, "rb") as fh:
        head = fh.read(HEAD_BYTES)
    if not head:
        raise ExtractorError("empty file")
    if head.startswith((b"%!PS", b"\xc5\xd0\xd3\xc6")):
        return _postscript(head)
    if head.startswith(b"# vtk DataFile"):
        return _vtk(head)
    if head.startswith((b"ply\n", b"ply\r\n")):
        return _ply(head)
    if head.startswith(b"OFF"):
        return _off(head)
    if path.lower().endswith(".stl") or head.startswith(b"solid "):
        return _stl(path, head)
    raise NotMyFormat("no PostScript, VTK, PLY, STL or OFF header")


GRAPHICS = Extractor(
    name=NAME,
    version=VERSION,
    func=extract_graphics,
    extensions=frozenset({"ps", "eps", "epsf", "epsi", "vtk", "ply", "stl", "off"}),
    mimes=frozenset({"application/postscript", "application/eps", "image/x-eps", "model/stl", "application/x-ply",
                     "application/x-vtk"}),
    kind="any",
    sniff=sniff_graphics,
)
