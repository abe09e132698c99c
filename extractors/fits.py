"""FITS (fits, fit, fts, fits.gz): every HDU's type, shape and header keywords.

A small header parser (no astropy): headers are 2880-byte blocks of 80-character
cards ending at ``END``; each HDU's data size follows from BITPIX, NAXISn, PCOUNT
and GCOUNT, so the reader seeks over the data to the next header and never reads
it. A file shorter than its headers promise is reported as truncated.
"""

from __future__ import annotations

import gzip
import math
import os
import re
from typing import IO, Any

from extractors.base import Extractor, ExtractorError, NotMyFormat, PartialMetadata

NAME = "fits"
VERSION = "2.0"
BLOCK = 2880
CARD = 80
MAX_HDUS = 1_000
MAX_HEADER_BLOCKS = 10_000
MAX_KEYWORDS = 500
_COMMENTARY = ("COMMENT", "HISTORY", "")


def parse_value(text: str) -> Any:
    """The value of a card's value field (string, logical, integer, float or complex)."""
    text = text.strip()
    if text.startswith("'"):
        out, i = [], 1
        while i < len(text):
            if text[i] == "'":
                if text[i + 1 : i + 2] == "'":
                    out.append("'")
                    i += 2
                    continue
                break
            out.append(text[i])
            i += 1
        return "".join(out).rstrip()
    value = text.split("/", 1)[0].strip()
    if value in ("T", "F"):
        return value == "T"
    if not value:
        return None
    if value.startswith("("):
        re_, _, im = value.strip("()").partition(",")
        return [float(re_.replace("D", "E")), float(im.replace("D", "E"))]
    try:
        return int(value)
    except ValueError:
        pass
    try:
        return float(value.replace("D", "E").replace("d", "e"))
    except ValueError:
        return value


def _cards(block: bytes, cards: list[tuple[str, Any]]) -> bool:
    """Parse 80-character cards of ``block`` into ``cards``; True when END was seen."""
    for i in range(0, len(block) - len(block) % CARD, CARD):
        card = block[i : i + CARD].decode("ascii", errors="replace")
        key = card[:8].strip()
        if key == "END":
            return True
        if card[8:10] == "= " and key not in _COMMENTARY:
            try:
                cards.append((key, parse_value(card[10:])))
            except ValueError:
                cards.append((key, card[10:].strip()))
        elif key in ("COMMENT", "HISTORY"):
            cards.append((key, card[8:].strip()))
    return False


class TruncatedHeader(Exception):
    """A header cut short: the cards read so far ride along."""

    def __init__(self, header: dict[str, Any], ended: bool) -> None:
        super().__init__("truncated FITS header")
        self.header, self.ended = header, ended


def read_header(fh: IO[bytes]) -> dict[str, Any] | None:
    """Cards of the header at the current position; None at a clean end of file."""
    cards: list[tuple[str, Any]] = []
    for block_no in range(MAX_HEADER_BLOCKS):
        block = fh.read(BLOCK)
        if not block and block_no == 0:
            return None
        ended = _cards(block, cards)
        if block_no == 0 and not cards and not ended:
            raise NotMyFormat("not a FITS header")
        if len(block) < BLOCK:
            raise TruncatedHeader(_header_dict(cards), ended)
        if ended:
            return _header_dict(cards)
    raise ExtractorError("FITS header without END")


_CARD_LINE = re.compile(rb"^[A-Z0-9_-]{1,8} *(= |$)|^(COMMENT|HISTORY) |^ *$")


def text_header(data: bytes) -> dict[str, Any] | None:
    """Cards of a header saved as text (one card a line, as .hdr/.header files hold), or None.

    A line longer than a card is taken as several cards run together.
    """
    chunks: list[bytes] = []
    for ln in data.splitlines()[:MAX_KEYWORDS * 4]:
        ln = ln.rstrip(b"\r")
        chunks += [ln[i : i + CARD] for i in range(0, len(ln), CARD)] or [b""]
    if not chunks:
        return None
    good = sum(bool(_CARD_LINE.match(c)) for c in chunks)
    if good < max(2, 0.8 * len(chunks)) or not any(c[8:10] == b"= " for c in chunks[:50]):
        return None
    cards: list[tuple[str, Any]] = []
    _cards(b"".join(c.ljust(CARD) for c in chunks), cards)
    return _header_dict(cards) if cards else None


def _header_dict(cards: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in cards:
        if key in ("COMMENT", "HISTORY"):
            out.setdefault(key, []).append(value)
        elif key not in out:
            out[key] = value
    return out


def _data_bytes(h: dict[str, Any]) -> int:
    naxis = int(h.get("NAXIS", 0))
    if naxis == 0:
        return 0
    dims = [int(h.get(f"NAXIS{i}", 0)) for i in range(1, naxis + 1)]
    if h.get("GROUPS") and dims[0] == 0:  # random groups: NAXIS1 = 0
        dims = dims[1:]
    bits = abs(int(h["BITPIX"]))
    return bits // 8 * int(h.get("GCOUNT", 1)) * (int(h.get("PCOUNT", 0)) + math.prod(dims))


def _hdu(index: int, h: dict[str, Any]) -> dict[str, Any]:
    naxis = int(h.get("NAXIS", 0))
    dims = [int(h.get(f"NAXIS{i}", 0)) for i in range(1, naxis + 1)]
    kind = "PRIMARY" if index == 0 else str(h.get("XTENSION", "UNKNOWN")).strip()
    out: dict[str, Any] = {"index": index, "type": kind, "name": h.get("EXTNAME"), "bitpix": h.get("BITPIX"),
                           "naxis": naxis, "shape": dims[::-1]}  # numpy (C) order, as astropy reports it
    if kind in ("BINTABLE", "TABLE"):
        nfields = int(h.get("TFIELDS", 0))
        out["rows"] = dims[1] if naxis >= 2 else 0
        out["columns"] = [{"name": h.get(f"TTYPE{i}"), "format": h.get(f"TFORM{i}"), "unit": h.get(f"TUNIT{i}")}
                          for i in range(1, min(nfields, 999) + 1)]
    keys = {k: v for k, v in h.items() if k not in ("COMMENT", "HISTORY")}
    out["header"] = dict(list(keys.items())[:MAX_KEYWORDS])
    out["n_keywords"] = len(keys)
    if "COMMENT" in h or "HISTORY" in h:
        out["n_comment_cards"] = len(h.get("COMMENT", [])) + len(h.get("HISTORY", []))
    return out


def extract_fits(path: str) -> dict[str, Any]:
    """Every HDU of a FITS file, or the cards of a header saved as text.

    A file cut short keeps what was read: the HDUs before the cut, the cards of a
    cut header, and ``truncated: true``.
    """
    with open(path, "rb") as fh:
        magic = fh.read(2)
    compressed = magic == b"\x1f\x8b"
    size = None if compressed else os.path.getsize(path)
    hdus: list[dict[str, Any]] = []
    truncated = None
    cut_header = False
    with (gzip.open(path, "rb") if compressed else open(path, "rb")) as fh:
        first = fh.read(BLOCK)
        if not first:
            raise ExtractorError("empty file")
        nl = first.find(b"\n")
        if 0 <= nl <= CARD:  # cards one per line: a header saved as text
            h = text_header(first + fh.read(MAX_KEYWORDS * 8 * CARD))
            if h is None:
                raise NotMyFormat("text that is not FITS header cards")
            return {"format": "fits-header", "compressed": compressed, "n_hdus": 1, "hdus": [_hdu(0, h)],
                    "text_header": True}
        fh.seek(0)
        while len(hdus) < MAX_HDUS:
            start = fh.tell()
            try:
                h = read_header(fh)
            except TruncatedHeader as exc:
                h, truncated = exc.header, "header ends without END" if not exc.ended else "no data after header"
                if not h or (not hdus and h.get("SIMPLE") is None and len(h) < 2):
                    raise NotMyFormat("not a FITS header") from None
                hdus.append({**_hdu(len(hdus), h), "header_offset": start, "truncated": True})
                cut_header = True
                break
            except NotMyFormat:
                if hdus:
                    break  # trailing bytes that are not an extension
                raise
            if h is None:
                break
            if not hdus and h.get("SIMPLE") is None and "XTENSION" not in h:
                if len(h) < 2:
                    raise NotMyFormat("not a FITS file: first keyword is not SIMPLE")
                truncated = "headers without a primary HDU"
            if hdus and "XTENSION" not in h:
                break  # trailing bytes that are not an extension
            if "BITPIX" not in h or "NAXIS" not in h:
                hdus.append({**_hdu(len(hdus), h), "header_offset": start})
                truncated = truncated or f"HDU {len(hdus) - 1} lacks BITPIX/NAXIS"
                break
            data = _data_bytes(h)
            padded = -(-data // BLOCK) * BLOCK
            end = fh.tell() + padded
            if size is not None and fh.tell() + data > size:
                hdus.append({**_hdu(len(hdus), h), "header_offset": start, "data_bytes": data, "truncated": True})
                truncated = f"HDU {len(hdus) - 1} needs {data} data bytes, the file ends sooner"
                break
            if compressed and data:
                fh.seek(end - 1)
                if not fh.read(1):
                    hdus.append({**_hdu(len(hdus), h), "header_offset": start, "data_bytes": data,
                                 "truncated": True})
                    truncated = f"HDU {len(hdus) - 1} data is cut short"
                    break
            else:
                fh.seek(end)
            hdus.append({**_hdu(len(hdus), h), "header_offset": start, "data_bytes": data})
    if not hdus:
        raise ExtractorError("empty file")
    out = {"format": "fits", "compressed": compressed, "n_hdus": len(hdus), "hdus": hdus}
    if truncated:
        out.update(truncated=True, truncation=truncated)
        if path.lower().endswith((".hdr", ".header")):
            out.update(format="fits-header", header_only=True)  # cards saved without data: by design
        elif cut_header:
            raise PartialMetadata(f"truncated FITS: {truncated}", out)
    return out


FITS = Extractor(
    name=NAME,
    version=VERSION,
    func=extract_fits,
    extensions=frozenset({"fits", "fit", "fts", "fits.gz", "fit.gz", "fts.gz", "fz", "hdr", "header"}),
    mimes=frozenset({"application/fits", "image/fits"}),
    kind="any",  # a header saved as text is FITS too; anything else says NotMyFormat
    accepts=frozenset({"application/gzip"}),
)
