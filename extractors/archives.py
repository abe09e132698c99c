"""Archives (zip, tar, tar.gz/bz2/xz, gz, bz2, xz): member lists, never extraction.

Nothing is written to disk and no member is decompressed beyond what listing needs:
zip listings come from the central directory; plain tar is walked by seeking over
member data; compressed tar has to be streamed, so the walk stops once it has
decompressed more than BOMB_RATIO times the file's size. A bomb (compression
ratio or member count past a limit) is reported in ``bomb``, not expanded.
Members with absolute or ``..`` paths are counted as unsafe.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
import struct
import tarfile
import zipfile
import zlib
from typing import Any

from extractors.base import Extractor, ExtractorError

NAME = "archives"
VERSION = "2.0"
MAX_LISTED = 1_000
#: Past these an archive is reported as a suspected bomb.
BOMB_RATIO = 100.0
BOMB_MEMBERS = 100_000
#: Bytes past which a ratio matters (a 1 KB file of zeros compresses 1000:1 harmlessly).
BOMB_MIN_BYTES = 100 * 1024 * 1024
#: Streaming a compressed tar stops after this many decompressed bytes per compressed byte.
SCAN_RATIO = BOMB_RATIO
#: A .gz up to this size is decompressed (into nothing) to verify it and measure it exactly.
GZ_VERIFY_BYTES = 256 * 1024 * 1024


def _unsafe(name: str) -> bool:
    return name.startswith(("/", "\\")) or ".." in name.replace("\\", "/").split("/")


def _bomb(total: int, compressed: int, members: int, *, stopped: bool = False) -> dict[str, Any]:
    ratio = total / compressed if compressed else 0.0
    reasons = []
    if ratio > BOMB_RATIO and total > BOMB_MIN_BYTES:
        reasons.append(f"compression ratio {ratio:.0f} > {BOMB_RATIO:.0f}")
    if members > BOMB_MEMBERS:
        reasons.append(f"{members} members > {BOMB_MEMBERS}")
    if stopped:
        reasons.append(f"listing stopped after decompressing {SCAN_RATIO:.0f}x the file size")
    return {"suspected": bool(reasons), "reasons": reasons, "ratio": round(ratio, 3)}


def _zip_entry_count(path: str) -> int | None:
    """Entry count from the end-of-central-directory record, read before parsing the directory."""
    with open(path, "rb") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        fh.seek(max(0, size - 65_557))
        tail = fh.read()
    pos = tail.rfind(b"PK\x05\x06")
    if pos < 0 or pos + 22 > len(tail):
        return None
    count = struct.unpack("<H", tail[pos + 10 : pos + 12])[0]
    loc = tail.rfind(b"PK\x06\x06", 0, pos)  # zip64 record
    if count == 0xFFFF and loc >= 0 and loc + 40 <= len(tail):
        count = struct.unpack("<Q", tail[loc + 32 : loc + 40])[0]
    return count


def extract_zip(path: str) -> dict[str, Any]:
    size = os.path.getsize(path)
    count = _zip_entry_count(path)
    if count is not None and count > BOMB_MEMBERS * 10:
        return {"format": "zip", "n_members": count, "members": [], "members_truncated": True,
                "total_uncompressed": None, "bomb": _bomb(0, size, count)}
    try:
        zf = zipfile.ZipFile(path)
    except zipfile.BadZipFile as exc:
        raise ExtractorError(f"not a readable zip archive: {exc}") from None
    with zf:
        infos = zf.infolist()
    total = sum(i.file_size for i in infos)
    members = [{"name": i.filename, "size": i.file_size, "compressed_size": i.compress_size, "is_dir": i.is_dir(),
                "compression": zipfile.compressor_names.get(i.compress_type, str(i.compress_type))}
               for i in infos[:MAX_LISTED]]
    member_ratio = max((i.file_size / i.compress_size for i in infos if i.compress_size), default=0.0)
    bomb = _bomb(total, size, len(infos))
    if member_ratio > BOMB_RATIO * 10 and total > BOMB_MIN_BYTES and not bomb["suspected"]:
        bomb["suspected"] = True
        bomb["reasons"].append(f"a member's compression ratio is {member_ratio:.0f}")
    return {
        "format": "zip",
        "n_members": len(infos),
        "n_files": sum(not i.is_dir() for i in infos),
        "total_uncompressed": total,
        "total_compressed": sum(i.compress_size for i in infos),
        "encrypted": any(i.flag_bits & 0x1 for i in infos),
        "unsafe_paths": sum(_unsafe(i.filename) for i in infos),
        "members": members,
        "members_truncated": len(infos) > MAX_LISTED,
        "bomb": bomb,
    }


def _tar_compression(head: bytes) -> str | None:
    if head.startswith(b"\x1f\x8b"):
        return "gz"
    if head.startswith(b"BZh"):
        return "bz2"
    if head.startswith(b"\xfd7zXZ\x00"):
        return "xz"
    return None


def extract_tar(path: str, compression: str | None) -> dict[str, Any]:
    size = os.path.getsize(path)
    budget = max(size * SCAN_RATIO, 64 * 1024 * 1024)
    members: list[dict[str, Any]] = []
    n = total = unsafe = 0
    stopped = False
    mode = f"r|{compression}" if compression else "r:"
    try:
        tf = tarfile.open(path, mode)
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ExtractorError(f"not a readable tar archive: {exc}") from None
    with tf:
        try:
            for info in tf:
                n += 1
                total += info.size
                unsafe += _unsafe(info.name) or (info.issym() and _unsafe(info.linkname))
                if len(members) < MAX_LISTED:
                    members.append({"name": info.name, "size": info.size, "type": _TAR_TYPES.get(info.type, "other"),
                                    "mtime": info.mtime})
                if n > BOMB_MEMBERS or (compression and tf.offset > budget):
                    stopped = True
                    break
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise ExtractorError(f"corrupt or truncated tar after {n} members: {exc}") from None
    if n == 0 and size > 0 and not compression:
        raise ExtractorError("not a tar archive: no members")
    return {
        "format": f"tar.{compression}" if compression else "tar",
        "n_members": n,
        "n_files": sum(m["type"] == "file" for m in members) if n <= MAX_LISTED else None,
        "total_uncompressed": total,
        "complete": not stopped,
        "unsafe_paths": unsafe,
        "members": members,
        "members_truncated": n > MAX_LISTED or stopped,
        "bomb": _bomb(total, size, n, stopped=stopped),
    }


_TAR_TYPES = {tarfile.REGTYPE: "file", tarfile.AREGTYPE: "file", tarfile.DIRTYPE: "dir", tarfile.SYMTYPE: "symlink",
              tarfile.LNKTYPE: "hardlink", tarfile.FIFOTYPE: "fifo", tarfile.CHRTYPE: "char", tarfile.BLKTYPE: "block"}


def extract_gzip(path: str) -> dict[str, Any]:
    """A single gzip stream: header fields and the size trailer, plus the inner type from its first bytes."""
    size = os.path.getsize(path)
    with open(path, "rb") as fh:
        header = fh.read(10)
        if len(header) < 10 or header[:2] != b"\x1f\x8b":
            raise ExtractorError("not a gzip file")
        flags, mtime = header[3], struct.unpack("<I", header[4:8])[0]
        name = None
        if flags & 0x04:  # FEXTRA
            xlen = struct.unpack("<H", fh.read(2))[0]
            fh.seek(xlen, os.SEEK_CUR)
        if flags & 0x08:  # FNAME
            name = fh.read(1024).split(b"\x00", 1)[0].decode("latin-1")
        fh.seek(-4, os.SEEK_END)
        isize = struct.unpack("<I", fh.read(4))[0]
    try:
        with gzip.open(path, "rb") as gz:
            inner = gz.read(2048)
    except (OSError, EOFError) as exc:
        raise ExtractorError(f"corrupt gzip stream: {exc}") from None
    from extractors.detect import mime_from_head

    verified = size <= GZ_VERIFY_BYTES
    total, stopped = _scan_gzip(path, size) if verified else (isize, False)  # ISIZE: the size mod 2**32
    return {
        "format": "gzip",
        "original_name": name,
        "mtime": mtime or None,
        "total_uncompressed": total,
        "size_verified": verified and not stopped,
        "inner_mime": mime_from_head(inner),
        "n_members": 1,
        "members": [{"name": name or os.path.basename(path)[:-3], "size": total}],
        "bomb": _bomb(total, size, 1, stopped=stopped),
    }


def _scan_gzip(path: str, size: int) -> tuple[int, bool]:
    """(uncompressed bytes, stopped early) by decompressing into nothing, within the bomb budget.

    Proves the stream is complete (a truncated file raises) and gives the exact size
    where the ISIZE trailer cannot (past 4 GiB, several members).
    """
    budget = max(size * SCAN_RATIO, BOMB_MIN_BYTES)
    total = 0
    d = zlib.decompressobj(wbits=31)
    with open(path, "rb") as fh:
        while True:
            chunk = fh.read(1 << 20)
            if not chunk:
                break
            while chunk:
                try:
                    out = d.decompress(chunk, 1 << 22)
                except zlib.error as exc:
                    raise ExtractorError(f"corrupt gzip stream: {exc}") from None
                total += len(out)
                if total > budget:
                    return total, True
                if d.eof:  # next member, if any
                    chunk = d.unused_data
                    d = zlib.decompressobj(wbits=31) if chunk.startswith(b"\x1f\x8b") else d
                    if not chunk.startswith(b"\x1f\x8b"):
                        chunk = b""
                else:
                    chunk = d.unconsumed_tail
    if not d.eof:
        raise ExtractorError("truncated gzip stream: it ends before its end-of-stream marker")
    return total, False


def extract_archives(path: str) -> dict[str, Any]:
    with open(path, "rb") as fh:
        head = fh.read(512)
    if not head:
        raise ExtractorError("empty file")
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return extract_zip(path)
    compression = _tar_compression(head)
    if compression is None:
        if head[257:262] == b"ustar" or path.lower().endswith(".tar"):
            return extract_tar(path, None)
        raise ExtractorError("not a zip, tar, gzip, bzip2 or xz archive")
    opener = {"gz": gzip.open, "bz2": bz2.open, "xz": lzma.open}[compression]
    try:
        with opener(path, "rb") as inner_fh:
            inner = inner_fh.read(512)
    except (OSError, EOFError) as exc:
        raise ExtractorError(f"corrupt {compression} stream: {exc}") from None
    if inner[257:262] == b"ustar":
        return extract_tar(path, compression)
    if compression == "gz":
        return extract_gzip(path)
    from extractors.detect import mime_from_head

    return {"format": compression, "n_members": 1, "total_uncompressed": None, "inner_mime": mime_from_head(inner),
            "members": [], "bomb": _bomb(0, os.path.getsize(path), 1)}


ARCHIVES = Extractor(
    name=NAME,
    version=VERSION,
    func=extract_archives,
    extensions=frozenset({"zip", "tar", "tar.gz", "tgz", "tar.bz2", "tbz2", "tar.xz", "txz", "gz", "bz2", "xz"}),
    mimes=frozenset({"application/zip", "application/x-tar", "application/gzip", "application/x-gzip",
                     "application/x-bzip2", "application/x-xz"}),
    kind="binary",
)
