"""Type inference: extension first, then magic bytes of the file's head.

Extension lookup costs nothing; the head is read only when the extension says
nothing, so a crawl of millions of well-named files does no extra I/O.
libmagic (python-magic) is used when installed; the built-in signature table
below keeps the default install free of system libraries.
"""

from __future__ import annotations

import mimetypes
from functools import lru_cache

HEAD_BYTES = 2048
COMPRESSION_SUFFIXES = frozenset({"gz", "bz2", "xz", "zst"})

#: Extensions the stdlib mimetypes table lacks or gets wrong for science data.
EXTRA_MIMES: dict[str, str] = {
    "h5": "application/x-hdf5",
    "hdf5": "application/x-hdf5",
    "he5": "application/x-hdf5",
    "hdf": "application/x-hdf",
    "nc": "application/x-netcdf",
    "nc4": "application/x-netcdf",
    "cdf": "application/x-netcdf",
    "fits": "application/fits",
    "fit": "application/fits",
    "fits.gz": "application/fits",
    "npy": "application/x-npy",
    "npz": "application/x-npz",
    "csv": "text/csv",
    "tsv": "text/tab-separated-values",
    "dat": "text/plain",
    "json": "application/json",
    "json.gz": "application/json",
    "xml": "application/xml",
    "md": "text/markdown",
    "rst": "text/x-rst",
    "py": "text/x-python",
    "c": "text/x-c",
    "h": "text/x-c",
    "cpp": "text/x-c++",
    "hpp": "text/x-c++",
    "tar.gz": "application/gzip",
    "tgz": "application/gzip",
    "gz": "application/gzip",
    "pkl": "application/x-pickle",
    "pickle": "application/x-pickle",
    "mat": "application/x-matlab-data",
    "webp": "image/webp",
    "parquet": "application/vnd.apache.parquet",
}

#: (offset, signature, mime), checked in order.
SIGNATURES: tuple[tuple[int, bytes, str], ...] = (
    (0, b"\x89PNG\r\n\x1a\n", "image/png"),
    (0, b"\xff\xd8\xff", "image/jpeg"),
    (0, b"GIF87a", "image/gif"),
    (0, b"GIF89a", "image/gif"),
    (0, b"II*\x00", "image/tiff"),
    (0, b"MM\x00*", "image/tiff"),
    (0, b"BM", "image/bmp"),
    (0, b"%PDF-", "application/pdf"),
    (0, b"\x89HDF\r\n\x1a\n", "application/x-hdf5"),
    (0, b"CDF\x01", "application/x-netcdf"),
    (0, b"CDF\x02", "application/x-netcdf"),
    (0, b"SIMPLE  =", "application/fits"),
    (0, b"\x93NUMPY", "application/x-npy"),
    (0, b"PK\x03\x04", "application/zip"),
    (0, b"\x1f\x8b", "application/gzip"),
    (0, b"BZh", "application/x-bzip2"),
    (0, b"\xfd7zXZ\x00", "application/x-xz"),
    (0, b"\x7fELF", "application/x-executable"),
    (0, b"PAR1", "application/vnd.apache.parquet"),
    (257, b"ustar", "application/x-tar"),
    (0, b"<?xml", "application/xml"),
)


def split_extension(name: str) -> str:
    """Lower-case extension, keeping compound ones (``tar.gz``, ``json.gz``) whole."""
    base = name.rsplit("/", 1)[-1]
    parts = base.lower().split(".")
    if len(parts) < 2 or (len(parts) == 2 and parts[0] == ""):
        return ""
    last = parts[-1]
    if last in COMPRESSION_SUFFIXES and len(parts) >= 3 and parts[-2] and len(parts[-2]) <= 5:
        return f"{parts[-2]}.{last}"
    return last


@lru_cache(maxsize=4096)
def mime_from_extension(extension: str) -> str | None:
    """Mime type for an extension, or None when the extension says nothing."""
    if not extension:
        return None
    if extension in EXTRA_MIMES:
        return EXTRA_MIMES[extension]
    guessed, _ = mimetypes.guess_type(f"x.{extension}", strict=False)
    return guessed


def _libmagic() -> object | None:
    try:
        import magic  # type: ignore[import-not-found]

        return magic.Magic(mime=True)
    except Exception:  # noqa: BLE001 - missing libmagic is a normal install
        return None


_MAGIC = None
_MAGIC_LOADED = False


def mime_from_head(head: bytes) -> str | None:
    """Mime type from the first bytes of a file (signatures, then a text sniff)."""
    global _MAGIC, _MAGIC_LOADED
    if not head:
        return "application/x-empty"
    for offset, sig, mime in SIGNATURES:
        if head[offset : offset + len(sig)] == sig:
            return mime
    if not _MAGIC_LOADED:
        _MAGIC, _MAGIC_LOADED = _libmagic(), True
    if _MAGIC is not None:
        try:
            found = _MAGIC.from_buffer(head)  # type: ignore[attr-defined]
            if found and found != "application/octet-stream":
                return str(found)
        except Exception:  # noqa: BLE001 - libmagic failures fall through to our sniff
            pass
    return sniff_text(head)


def sniff_text(head: bytes) -> str:
    """Tell JSON, tables and free text apart from a text head; binary otherwise."""
    if b"\x00" in head:
        return "application/octet-stream"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # a cut multi-byte char at the end is fine
            return "application/octet-stream"
        text = head[: exc.start].decode("utf-8")
    stripped = text.lstrip()
    if stripped.startswith(("{", "[")):
        return "application/json"
    if stripped.startswith("<"):
        return "application/xml"
    lines = [ln for ln in text.splitlines()[:20] if ln.strip()]
    if len(lines) >= 2:
        for delim in (",", "\t", ";", "|"):
            counts = {ln.count(delim) for ln in lines[1:-1] or lines[1:]}
            if len(counts) == 1 and counts != {0}:
                return "text/csv" if delim == "," else "text/tab-separated-values"
    return "text/plain"


def read_head(path: str, n: int = HEAD_BYTES) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(n)
