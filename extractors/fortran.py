"""Fortran unformatted sequential files: the record structure (count, sizes, marker width, byte order).

Each record is framed by its byte length before and after (4- or 8-byte markers,
either byte order). A file is taken as Fortran only when the whole file is an
unbroken chain of matching markers, which random binary data practically never
is; the walk seeks from marker to marker and never reads the payloads.
"""

from __future__ import annotations

import os
import struct
from typing import Any

from extractors.base import Extractor, NotMyFormat

NAME = "fortran"
VERSION = "1.0"
MAX_RECORDS = 100_000
MAX_LISTED = 50
_LAYOUTS = (("<", 4), (">", 4), ("<", 8), (">", 8))


def _marker(raw: bytes, e: str, w: int) -> int:
    return struct.unpack(e + ("i" if w == 4 else "q"), raw)[0]


def sniff_fortran(head: bytes) -> bool:
    for e, w in _LAYOUTS:
        if len(head) < 2 * w:
            continue
        n = _marker(head[:w], e, w)
        if 0 < n and w + n + w <= len(head) and _marker(head[w + n : 2 * w + n], e, w) == n:
            return True
    return False


def extract_fortran(path: str) -> dict[str, Any]:
    size = os.path.getsize(path)
    with open(path, "rb") as fh:
        for e, w in _LAYOUTS:
            pos, sizes, n_records = 0, [], 0
            while pos + 2 * w <= size and n_records < MAX_RECORDS:
                fh.seek(pos)
                n = _marker(fh.read(w), e, w)
                if n < 0 or pos + 2 * w + n > size:
                    break
                fh.seek(pos + w + n)
                if _marker(fh.read(w), e, w) != n:
                    break
                n_records += 1
                if len(sizes) < MAX_LISTED:
                    sizes.append(n)
                pos += 2 * w + n
            if n_records and (pos == size or n_records >= MAX_RECORDS):
                return {"format": "fortran-unformatted", "byte_order": "little" if e == "<" else "big",
                        "marker_bytes": w, "records": n_records, "record_bytes": sizes,
                        "records_capped": n_records >= MAX_RECORDS}
    raise NotMyFormat("not a chain of Fortran record markers")


FORTRAN = Extractor(
    name=NAME,
    version=VERSION,
    func=extract_fortran,
    extensions=frozenset({"unf", "fort"}),
    mimes=frozenset({"application/x-fortran-unformatted"}),
    kind="any",
    sniff=sniff_fortran,
    priority=300,  # the weakest sniff of all: asked last
)
