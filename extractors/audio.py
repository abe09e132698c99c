"""Audio (wav, aiff, flac, ogg/opus, mp3, m4a): duration, sample rate, channels, bit depth, codec, tags.

WAV (RIFF/RF64), AIFF/AIFF-C and FLAC are read by a small chunk reader that only
visits headers (``fmt ``/``COMM``/``STREAMINFO``) and seeks over sample data, so
the cost does not depend on the recording's length, and it needs no library.
MP3, Ogg and MP4 audio go through mutagen (the science extra), which also reads
tags (ID3, Vorbis comments, iTunes atoms) for every format; without mutagen those
formats give a record saying which extra to install.
"""

from __future__ import annotations

import os
import struct
from typing import IO, Any

from extractors.base import Extractor, ExtractorError, NotMyFormat, require

NAME = "audio"
VERSION = "1.0"
MAX_CHUNKS = 10_000
MAX_TAG = 200
MAX_TAGS = 50
WAVE_FORMATS = {1: "pcm", 3: "ieee_float", 6: "alaw", 7: "mulaw", 2: "adpcm", 17: "ima_adpcm", 85: "mp3",
                0xFFFE: "extensible"}


def sniff_audio(head: bytes) -> bool:
    return (head[:4] in (b"RIFF", b"RF64", b"RIFX") and head[8:12] == b"WAVE") or (
        head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC")) or head[:4] in (b"fLaC", b"OggS") or (
        head[:3] == b"ID3") or head[4:8] == b"ftyp" and head[8:11] in (b"M4A", b"M4B", b"mp4")


def _wav(fh: IO[bytes], size: int) -> dict[str, Any]:
    head = fh.read(12)
    e = ">" if head[:4] == b"RIFX" else "<"
    out: dict[str, Any] = {"format": "wav", "container": head[:4].decode()}
    data_bytes = None
    pos = 12
    for _ in range(MAX_CHUNKS):
        fh.seek(pos)
        hdr = fh.read(8)
        if len(hdr) < 8:
            break
        cid, clen = hdr[:4], struct.unpack(e + "I", hdr[4:])[0]
        if cid == b"fmt ":
            fmt = fh.read(min(clen, 64))
            if len(fmt) < 16:
                raise ExtractorError("fmt chunk cut short")
            tag, ch, rate, byte_rate, align, bits = struct.unpack(e + "HHIIHH", fmt[:16])
            if tag == 0xFFFE and len(fmt) >= 26:
                tag = struct.unpack(e + "H", fmt[24:26])[0]
                out["extensible"] = True
            out.update(codec=WAVE_FORMATS.get(tag, f"0x{tag:04x}"), channels=ch, sample_rate=rate,
                       bits_per_sample=bits, byte_rate=byte_rate, block_align=align)
        elif cid == b"data":
            data_bytes = clen
            if pos + 8 + clen > size:
                out["truncated"] = True
                data_bytes = size - pos - 8
        elif cid == b"ds64":  # RF64: the real data size
            ds = fh.read(28)
            if len(ds) >= 16:
                data_bytes = struct.unpack("<Q", ds[8:16])[0]
        elif cid == b"LIST":
            kind = fh.read(4)
            if kind == b"INFO":
                info = fh.read(min(clen - 4, 65536))
                tags = out.setdefault("tags", {})
                i = 0
                while i + 8 <= len(info) and len(tags) < MAX_TAGS:
                    sid, slen = info[i : i + 4].decode("latin-1"), struct.unpack(e + "I", info[i + 4 : i + 8])[0]
                    tags[sid] = info[i + 8 : i + 8 + slen].split(b"\x00", 1)[0].decode("latin-1")[:MAX_TAG]
                    i += 8 + slen + (slen & 1)
        out.setdefault("chunks", []).append(cid.decode("latin-1"))
        pos += 8 + clen + (clen & 1)
        if pos >= size:
            break
    if "sample_rate" not in out:
        raise ExtractorError("WAV without a fmt chunk")
    if data_bytes is not None:
        out["data_bytes"] = data_bytes
        if out.get("block_align") and out["sample_rate"]:
            out["frames"] = data_bytes // out["block_align"]
            out["duration_s"] = round(out["frames"] / out["sample_rate"], 6)
    return out


def _ieee_extended(b: bytes) -> float:
    exp, mant = struct.unpack(">HQ", b)
    sign = -1 if exp & 0x8000 else 1
    exp &= 0x7FFF
    if exp == 0 and mant == 0:
        return 0.0
    return sign * mant * 2.0 ** (exp - 16383 - 63)


def _aiff(fh: IO[bytes], size: int) -> dict[str, Any]:
    head = fh.read(12)
    out: dict[str, Any] = {"format": "aiff" if head[8:12] == b"AIFF" else "aifc"}
    pos = 12
    for _ in range(MAX_CHUNKS):
        fh.seek(pos)
        hdr = fh.read(8)
        if len(hdr) < 8:
            break
        cid, clen = hdr[:4], struct.unpack(">I", hdr[4:])[0]
        if cid == b"COMM":
            comm = fh.read(min(clen, 64))
            if len(comm) < 18:
                raise ExtractorError("COMM chunk cut short")
            ch, frames, bits = struct.unpack(">hIh", comm[:8])
            rate = _ieee_extended(comm[8:18])
            out.update(channels=ch, frames=frames, bits_per_sample=bits, sample_rate=rate)
            if rate:
                out["duration_s"] = round(frames / rate, 6)
            if len(comm) >= 22:
                out["codec"] = comm[18:22].decode("latin-1")
        elif cid in (b"NAME", b"AUTH", b"(c) ", b"ANNO"):
            out.setdefault("tags", {})[cid.decode("latin-1").strip()] = fh.read(min(clen, MAX_TAG)).decode(
                "latin-1").rstrip("\x00")
        elif cid == b"SSND" and pos + 8 + clen > size:
            out["truncated"] = True
        pos += 8 + clen + (clen & 1)
        if pos >= size:
            break
    if "sample_rate" not in out:
        raise ExtractorError("AIFF without a COMM chunk")
    return out


def _flac(fh: IO[bytes]) -> dict[str, Any]:
    fh.seek(4)
    out: dict[str, Any] = {"format": "flac", "codec": "flac"}
    for _ in range(MAX_CHUNKS):
        hdr = fh.read(4)
        if len(hdr) < 4:
            break
        last, btype, blen = hdr[0] & 0x80, hdr[0] & 0x7F, int.from_bytes(hdr[1:4], "big")
        if btype == 0:
            si = fh.read(34)
            if len(si) < 18:
                raise ExtractorError("STREAMINFO cut short")
            bits = int.from_bytes(si[10:18], "big")
            rate = bits >> 44
            ch = ((bits >> 41) & 0x7) + 1
            bps = ((bits >> 36) & 0x1F) + 1
            total = bits & 0xFFFFFFFFF
            out.update(sample_rate=rate, channels=ch, bits_per_sample=bps, frames=total)
            if rate:
                out["duration_s"] = round(total / rate, 6)
            fh.seek(blen - 34, 1)
        elif btype == 4:  # Vorbis comments
            raw = fh.read(min(blen, 65536))
            fh.seek(blen - len(raw), 1)
            out["tags"] = _vorbis_comments(raw)
        else:
            fh.seek(blen, 1)
        if last:
            break
    if "sample_rate" not in out:
        raise ExtractorError("FLAC without STREAMINFO")
    return out


def _vorbis_comments(raw: bytes) -> dict[str, str]:
    tags: dict[str, str] = {}
    try:
        vlen = struct.unpack_from("<I", raw, 0)[0]
        pos = 4 + vlen
        n = struct.unpack_from("<I", raw, pos)[0]
        pos += 4
        for _ in range(min(n, MAX_TAGS)):
            ln = struct.unpack_from("<I", raw, pos)[0]
            key, _, value = raw[pos + 4 : pos + 4 + ln].decode("utf-8", errors="replace").partition("=")
            tags[key.lower()] = value[:MAX_TAG]
            pos += 4 + ln
    except struct.error:
        pass
    return tags


def _mutagen(path: str) -> dict[str, Any]:
    mutagen = require("mutagen", package="mutagen")
    try:
        f = mutagen.File(path)
    except Exception as exc:  # noqa: BLE001 - mutagen raises many types for a damaged file
        raise ExtractorError(f"unreadable audio: {type(exc).__name__}: {exc}") from None
    if f is None:
        raise NotMyFormat("mutagen does not recognise this file")
    info = f.info
    out: dict[str, Any] = {"format": type(f).__name__.lower()}
    for attr, key in (("length", "duration_s"), ("sample_rate", "sample_rate"), ("channels", "channels"),
                      ("bitrate", "bitrate"), ("bits_per_sample", "bits_per_sample"), ("codec", "codec"),
                      ("codec_description", "codec_description"), ("mode", "mode"), ("version", "version"),
                      ("layer", "layer")):
        v = getattr(info, attr, None)
        if v is not None and v != "":
            out[key] = round(v, 6) if isinstance(v, float) else (v if isinstance(v, (int, str)) else str(v))
    tags: dict[str, str] = {}
    for k, v in list((f.tags or {}).items())[:MAX_TAGS]:
        text = v[0] if isinstance(v, list) and v else v
        if isinstance(text, bytes) or len(str(text)) > 10 * MAX_TAG:
            continue  # pictures and binary frames
        tags[str(k)[:50]] = str(text)[:MAX_TAG]
    if tags:
        out["tags"] = tags
    return out


def extract_audio(path: str) -> dict[str, Any]:
    size = os.path.getsize(path)
    with open(path, "rb") as fh:
        head = fh.read(12)
        if not head:
            raise ExtractorError("empty file")
        fh.seek(0)
        try:
            if head[:4] in (b"RIFF", b"RF64", b"RIFX") and head[8:12] == b"WAVE":
                out = _wav(fh, size)
            elif head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
                out = _aiff(fh, size)
            elif head[:4] == b"fLaC":
                out = _flac(fh)
            else:
                return _mutagen(path)
        except struct.error as exc:
            raise ExtractorError(f"audio header cut short: {exc}") from None
    return out


AUDIO = Extractor(
    name=NAME,
    version=VERSION,
    func=extract_audio,
    extensions=frozenset({"wav", "wave", "aif", "aiff", "aifc", "flac", "ogg", "oga", "opus", "mp3", "m4a",
                          "spx"}),
    mimes=frozenset({"audio/wav", "audio/x-wav", "audio/aiff", "audio/x-aiff", "audio/flac", "audio/ogg",
                     "audio/mpeg", "audio/mp4", "audio/x-flac"}),
    kind="any",
    sniff=sniff_audio,
    preload=("mutagen",),
)
