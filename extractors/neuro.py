"""Neuroimaging headers (NIfTI-1/2, Analyze 7.5, MGH/MGZ, TrackVis .trk, MRtrix .tck): geometry without voxels.

Each format has a fixed binary header (348, 540, 284 or 1000 bytes) or a short text
header: dimensions, voxel sizes, data type, units, description and orientation
codes are read from it with ``struct``; image data is never read, and a gzipped
file (.nii.gz, .mgz) is inflated only as far as its header. No nibabel needed.
"""

from __future__ import annotations

import gzip
import struct
from typing import Any

from extractors.base import Extractor, ExtractorError, NotMyFormat

NAME = "neuro"
VERSION = "1.0"
DATATYPES = {0: "unknown", 1: "bool", 2: "uint8", 4: "int16", 8: "int32", 16: "float32", 32: "complex64",
             64: "float64", 128: "rgb24", 256: "int8", 512: "uint16", 768: "uint32", 1024: "int64",
             1280: "uint64", 1536: "float128", 1792: "complex128", 2048: "complex256", 2304: "rgba32"}
SPACE_UNITS = {0: None, 1: "m", 2: "mm", 3: "um"}
TIME_UNITS = {0: None, 8: "s", 16: "ms", 24: "us", 32: "Hz", 40: "ppm", 48: "rad/s"}
XFORM = {0: "unknown", 1: "scanner", 2: "aligned", 3: "talairach", 4: "mni", 5: "template"}
MGH_TYPES = {0: "uint8", 1: "int32", 3: "float32", 4: "int16"}
MAX_TEXT_HEADER = 64 * 1024


def _cstr(b: bytes) -> str:
    return b.split(b"\x00", 1)[0].decode("latin-1").strip()


def sniff_neuro(head: bytes) -> bool:
    if len(head) >= 4 and struct.unpack("<i", head[:4])[0] in (348, 540) or struct.unpack(">i", head[:4])[0] in (
            348, 540):
        return True
    return head.startswith((b"TRACK\x00", b"mrtrix tracks")) or head[:4] == b"\x00\x00\x00\x01" and len(head) > 284


def _read_head(path: str, n: int) -> tuple[bytes, bool]:
    with open(path, "rb") as fh:
        magic = fh.read(2)
    if magic == b"\x1f\x8b":
        with gzip.open(path, "rb") as gz:
            return gz.read(n), True
    with open(path, "rb") as fh:
        return fh.read(n), False


def _nifti1(h: bytes, e: str, compressed: bool) -> dict[str, Any]:
    magic = h[344:348]
    fmt = {b"n+1\x00": "nifti1", b"ni1\x00": "nifti1-pair"}.get(magic, "analyze")
    dims = struct.unpack_from(e + "8h", h, 40)
    ndim = dims[0] if 0 < dims[0] <= 7 else 0
    pixdim = struct.unpack_from(e + "8f", h, 76)
    datatype, bitpix = struct.unpack_from(e + "hh", h, 70)
    out: dict[str, Any] = {"format": fmt, "compressed": compressed, "shape": list(dims[1 : ndim + 1]),
                           "voxel_size": [round(v, 6) for v in pixdim[1 : ndim + 1]],
                           "datatype": DATATYPES.get(datatype, str(datatype)), "bitpix": bitpix,
                           "description": _cstr(h[148:228])}
    if fmt == "analyze":
        out["db_name"] = _cstr(h[14:32])
        return out
    units = h[123]
    out.update(space_unit=SPACE_UNITS.get(units & 7), time_unit=TIME_UNITS.get(units & 56),
               intent_code=struct.unpack_from(e + "h", h, 68)[0], intent_name=_cstr(h[328:344]),
               qform=XFORM.get(struct.unpack_from(e + "h", h, 252)[0], "other"),
               sform=XFORM.get(struct.unpack_from(e + "h", h, 254)[0], "other"),
               vox_offset=struct.unpack_from(e + "f", h, 108)[0], aux_file=_cstr(h[228:252]))
    slope, inter = struct.unpack_from(e + "ff", h, 112)
    if slope not in (0.0, 1.0) or inter:
        out["scl_slope"], out["scl_inter"] = slope, inter
    return out


def _nifti2(h: bytes, e: str, compressed: bool) -> dict[str, Any]:
    datatype, bitpix = struct.unpack_from(e + "hh", h, 12)
    dims = struct.unpack_from(e + "8q", h, 16)
    ndim = dims[0] if 0 < dims[0] <= 7 else 0
    pixdim = struct.unpack_from(e + "8d", h, 104)
    return {"format": "nifti2", "compressed": compressed, "shape": list(dims[1 : ndim + 1]),
            "voxel_size": [round(v, 6) for v in pixdim[1 : ndim + 1]],
            "datatype": DATATYPES.get(datatype, str(datatype)), "bitpix": bitpix,
            "description": _cstr(h[240:320]), "intent_name": _cstr(h[508:524])}


def _mgh(h: bytes, compressed: bool) -> dict[str, Any]:
    version, w, hgt, d, frames, dtype, dof, goodras = struct.unpack_from(">8i", h[:30] + b"\x00\x00", 0)
    if version != 1 or min(w, hgt, d, frames) < 0:
        raise NotMyFormat("not an MGH header")
    out: dict[str, Any] = {"format": "mgz" if compressed else "mgh", "shape": [w, hgt, d, frames],
                           "datatype": MGH_TYPES.get(dtype, str(dtype)), "dof": dof}
    if goodras > 0 and len(h) >= 30 + 12:
        out["voxel_size"] = [round(v, 6) for v in struct.unpack_from(">3f", h, 30)]
    return out


def _trk(h: bytes) -> dict[str, Any]:
    if len(h) < 1000:
        raise ExtractorError("TrackVis header cut short")
    e = "<" if struct.unpack_from("<i", h, 996)[0] == 1000 else ">"
    n_scalars = struct.unpack_from(e + "h", h, 36)[0]
    n_props = struct.unpack_from(e + "h", h, 238)[0]
    return {"format": "trk", "version": struct.unpack_from(e + "i", h, 992)[0],
            "dim": list(struct.unpack_from(e + "3h", h, 6)),
            "voxel_size": [round(v, 6) for v in struct.unpack_from(e + "3f", h, 12)],
            "n_streamlines": struct.unpack_from(e + "i", h, 988)[0],
            "scalars": [_cstr(h[38 + 20 * i : 58 + 20 * i]) for i in range(min(max(n_scalars, 0), 10))],
            "properties": [_cstr(h[240 + 20 * i : 260 + 20 * i]) for i in range(min(max(n_props, 0), 10))],
            "voxel_order": _cstr(h[948:952])}


def _tck(path: str) -> dict[str, Any]:
    with open(path, "rb") as fh:
        raw = fh.read(MAX_TEXT_HEADER)
    end = raw.find(b"\nEND\n")
    if not raw.startswith(b"mrtrix tracks") or end < 0:
        raise ExtractorError("MRtrix header without END")
    fields: dict[str, str] = {}
    for line in raw[:end].decode("latin-1").splitlines()[1:]:
        key, _, value = line.partition(":")
        if key.strip() and len(fields) < 100:
            fields[key.strip()] = value.strip()[:200]
    out: dict[str, Any] = {"format": "tck", "fields": fields}
    for key in ("count", "total_count"):
        if fields.get(key, "").isdigit():
            out[key] = int(fields[key])
    return out


def extract_neuro(path: str) -> dict[str, Any]:
    h, compressed = _read_head(path, 1000)
    if not h:
        raise ExtractorError("empty file")
    if h.startswith(b"mrtrix tracks"):
        return _tck(path)
    if h.startswith(b"TRACK\x00"):
        return _trk(h)
    for e in ("<", ">"):
        if len(h) >= 4 and struct.unpack_from(e + "i", h, 0)[0] == 348:
            if len(h) < 348:
                raise ExtractorError("NIfTI/Analyze header cut short")
            return _nifti1(h, e, compressed)
        if len(h) >= 4 and struct.unpack_from(e + "i", h, 0)[0] == 540:
            if len(h) < 540:
                raise ExtractorError("NIfTI-2 header cut short")
            return _nifti2(h, e, compressed)
    if h[:4] == b"\x00\x00\x00\x01" and len(h) >= 30:
        return _mgh(h, compressed)
    raise NotMyFormat("no NIfTI, Analyze, MGH, TrackVis or MRtrix header")


NEURO = Extractor(
    name=NAME,
    version=VERSION,
    func=extract_neuro,
    extensions=frozenset({"nii", "nii.gz", "mgh", "mgz", "trk", "tck"}),
    mimes=frozenset({"application/x-nifti", "application/x-mgh", "application/x-trackvis"}),
    kind="any",
    sniff=sniff_neuro,
    accepts=frozenset({"application/gzip"}),
)
