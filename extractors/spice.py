"""NASA/NAIF SPICE binary kernels (DAF: .bsp ephemerides, .bpc orientation, .bc pointing): segments and coverage.

A DAF file's first record names its kind, byte order and internal file name; its
summary records list every segment (target, centre, frame, data type, start and
end epoch). The reader follows the summary-record chain only (capped), never the
segment data, and reports the bodies and the time span the kernel covers. No
spiceypy or jplephem needed.
"""

from __future__ import annotations

import os
import struct
from datetime import UTC, datetime, timedelta
from typing import Any

from extractors.base import Extractor, ExtractorError, NotMyFormat

NAME = "spice"
VERSION = "1.0"
RECORD = 1024
MAX_SUMMARY_RECORDS = 10_000
MAX_SEGMENTS = 2_000
_J2000 = datetime(2000, 1, 1, 12, tzinfo=UTC)
#: A few NAIF ids, for readability; the ids themselves are always reported.
BODIES = {0: "SOLAR SYSTEM BARYCENTER", 1: "MERCURY BARYCENTER", 2: "VENUS BARYCENTER", 3: "EARTH BARYCENTER",
          4: "MARS BARYCENTER", 5: "JUPITER BARYCENTER", 6: "SATURN BARYCENTER", 7: "URANUS BARYCENTER",
          8: "NEPTUNE BARYCENTER", 9: "PLUTO BARYCENTER", 10: "SUN", 199: "MERCURY", 299: "VENUS", 301: "MOON",
          399: "EARTH", 499: "MARS", 599: "JUPITER", 699: "SATURN", 799: "URANUS", 899: "NEPTUNE", 999: "PLUTO"}


def sniff_spice(head: bytes) -> bool:
    return head[:4] in (b"DAF/", b"NAIF") and head[4:7] in (b"SPK", b"PCK", b"CK ", b"DAF", b"EK ")


def _epoch(seconds: float) -> str | None:
    try:
        return (_J2000 + timedelta(seconds=seconds)).isoformat()
    except (OverflowError, ValueError):
        return None


def extract_spice(path: str) -> dict[str, Any]:
    size = os.path.getsize(path)
    with open(path, "rb") as fh:
        first = fh.read(RECORD)
        if not sniff_spice(first):
            raise NotMyFormat("no DAF file record")
        fmt = first[88:96].decode("latin-1")
        e = ">" if fmt.startswith("BIG") else "<"
        nd, ni = struct.unpack_from(e + "ii", first, 8)
        if not (0 < nd <= 124 and 2 < ni <= 250):
            raise ExtractorError(f"implausible DAF summary format ND={nd} NI={ni}")
        fward = struct.unpack_from(e + "i", first, 76)[0]
        out: dict[str, Any] = {"format": "daf", "kind": first[:8].decode("latin-1").strip(),
                               "internal_name": first[16:76].decode("latin-1").strip(), "byte_order": fmt.strip()}
        nint = (ni + 1) // 2
        width = 8 * (nd + nint)
        segments: list[dict[str, Any]] = []
        rec, seen, n_segments = fward, set(), 0
        while rec > 0 and rec not in seen and len(seen) < MAX_SUMMARY_RECORDS:
            seen.add(rec)
            if rec * RECORD > size:
                out["truncated"] = True
                break
            fh.seek((rec - 1) * RECORD)
            block = fh.read(RECORD)
            if len(block) < RECORD:
                out["truncated"] = True
                break
            nxt, _, nsum = struct.unpack_from(e + "3d", block, 0)
            for i in range(int(nsum) if 0 <= nsum <= 125 else 0):
                off = 24 + i * width
                doubles = struct.unpack_from(e + f"{nd}d", block, off)
                ints = struct.unpack_from(e + f"{ni}i", block, off + 8 * nd)
                n_segments += 1
                if len(segments) < MAX_SEGMENTS:
                    seg: dict[str, Any] = {"start": _epoch(doubles[0]), "end": _epoch(doubles[1])} if nd >= 2 else {}
                    if out["kind"].endswith("SPK") and ni >= 4:
                        seg.update(target=ints[0], center=ints[1], frame=ints[2], type=ints[3])
                    else:
                        seg["ints"] = list(ints[: ni - 2])
                    segments.append(seg)
            rec = int(nxt)
    out.update(n_segments=n_segments, segments=segments)
    starts = [s["start"] for s in segments if s.get("start")]
    ends = [s["end"] for s in segments if s.get("end")]
    if starts and ends:
        out["coverage"] = [min(starts), max(ends)]
    bodies = sorted({s[k] for s in segments for k in ("target", "center") if k in s})
    if bodies:
        out["bodies"] = {str(b): BODIES.get(b, "") for b in bodies}
    return out


SPICE = Extractor(
    name=NAME,
    version=VERSION,
    func=extract_spice,
    extensions=frozenset({"bsp", "bpc", "bc", "bds"}),
    mimes=frozenset({"application/x-spice-daf"}),
    kind="any",
    sniff=sniff_spice,
)
