"""NumPy arrays (npy, npz): shape, dtype and order from the headers alone.

The ``.npy`` header is a Python-literal dict that ``numpy.lib.format`` parses with
``ast.literal_eval`` (size-capped); the data is never read and ``allow_pickle`` is
never set, so an object array is reported (``has_objects``), not unpickled. An
``.npz`` is a zip: each member's header is read from its stream, nothing more.
"""

from __future__ import annotations

import math
import os
import zipfile
from typing import IO, Any

from extractors.base import Extractor, ExtractorError

NAME = "numpy"
VERSION = "2.0"
MAX_MEMBERS = 1_000
MAX_HEADER = 100_000


def read_npy_header(fh: IO[bytes]) -> dict[str, Any]:
    """Header facts of the .npy stream at ``fh`` (positioned at its start)."""
    from numpy.lib import format as npformat

    try:
        version = npformat.read_magic(fh)
        if version == (1, 0):
            shape, fortran, dtype = npformat.read_array_header_1_0(fh, max_header_size=MAX_HEADER)
        elif version == (2, 0):
            shape, fortran, dtype = npformat.read_array_header_2_0(fh, max_header_size=MAX_HEADER)
        else:
            shape, fortran, dtype = npformat._read_array_header(fh, version, max_header_size=MAX_HEADER)
    except (ValueError, EOFError, SyntaxError) as exc:
        raise ExtractorError(f"bad .npy header: {exc}") from None
    has_objects = bool(dtype.hasobject)
    return {
        "format_version": f"{version[0]}.{version[1]}",
        "shape": list(shape),
        "dtype": str(dtype) if not dtype.fields else [[n, str(dtype.fields[n][0])] for n in dtype.names],
        "fortran_order": bool(fortran),
        "has_objects": has_objects,
        "nbytes": None if has_objects else math.prod(shape) * dtype.itemsize,
        "header_bytes": fh.tell(),
    }


def extract_npy(path: str) -> dict[str, Any]:
    with open(path, "rb") as fh:
        info = read_npy_header(fh)
    present = os.path.getsize(path) - info["header_bytes"]
    if info["nbytes"] is not None and present < info["nbytes"]:
        raise ExtractorError(f"truncated .npy: header promises {info['nbytes']} data bytes, file has {present}")
    return {"format": "npy", **info}


def extract_npz(path: str) -> dict[str, Any]:
    try:
        zf = zipfile.ZipFile(path)
    except zipfile.BadZipFile as exc:
        raise ExtractorError(f"not a readable .npz (zip) file: {exc}") from None
    arrays: list[dict[str, Any]] = []
    other: list[str] = []
    with zf:
        infos = zf.infolist()
        for info in infos[:MAX_MEMBERS]:
            if not info.filename.endswith(".npy"):
                other.append(info.filename)
                continue
            with zf.open(info) as member:
                head = read_npy_header(member)
            if head["nbytes"] is not None and info.file_size - head["header_bytes"] < head["nbytes"]:
                raise ExtractorError(f"truncated member {info.filename}: header promises {head['nbytes']} bytes")
            arrays.append({"name": info.filename[:-4], **head, "compressed": info.compress_type != zipfile.ZIP_STORED})
    return {"format": "npz", "n_arrays": len(arrays), "arrays": arrays, "other_members": other[:MAX_MEMBERS],
            "members_truncated": len(infos) > MAX_MEMBERS}


def extract_numpy(path: str) -> dict[str, Any]:
    with open(path, "rb") as fh:
        magic = fh.read(6)
    if magic.startswith(b"PK"):
        return extract_npz(path)
    if magic == b"\x93NUMPY":
        return extract_npy(path)
    raise ExtractorError("neither a .npy (\\x93NUMPY) nor an .npz (zip) file")


NUMPY = Extractor(
    name=NAME,
    version=VERSION,
    func=extract_numpy,
    extensions=frozenset({"npy", "npz"}),
    mimes=frozenset({"application/x-npy", "application/x-npz"}),
    kind="binary",
    accepts=frozenset({"application/zip"}),
)
