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
    "text": "text/plain",
    "log": "text/plain",
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
    "joblib": "application/x-pickle",
    "jsonl": "application/x-ndjson",
    "ndjson": "application/x-ndjson",
    "csv.gz": "text/csv",
    "tsv.gz": "text/tab-separated-values",
    "tar.bz2": "application/x-bzip2",
    "tar.xz": "application/x-xz",
    "tbz2": "application/x-bzip2",
    "txz": "application/x-xz",
    "bz2": "application/x-bzip2",
    "xz": "application/x-xz",
    "jp2": "image/jp2",
    "j2k": "image/jp2",
    "tif": "image/tiff",
    "tiff": "image/tiff",
    "cc": "text/x-c++",
    "cxx": "text/x-c++",
    "hh": "text/x-c++",
    "mat": "application/x-matlab-data",
    "webp": "image/webp",
    "parquet": "application/vnd.apache.parquet",
    "dcm": "application/dicom",
    "dicom": "application/dicom",
    "ttf": "font/ttf",
    "otf": "font/otf",
    "ttc": "font/collection",
    "woff": "font/woff",
    "woff2": "font/woff2",
    "afm": "application/x-font-afm",
    "pfb": "application/x-font-type1",
    "sav": "application/x-idl-save",
    "ini": "text/x-ini",
    "cfg": "text/x-ini",
    "toml": "application/toml",
    "yaml": "application/yaml",
    "yml": "application/yaml",
    "mplstyle": "text/x-ini",
    "feather": "application/vnd.apache.arrow.file",
    "arrow": "application/vnd.apache.arrow.file",
    "orc": "application/x-orc",
    "dta": "application/x-stata-dta",
    "grib": "application/x-grib",
    "grb": "application/x-grib",
    "grib2": "application/x-grib2",
    "grb2": "application/x-grib2",
    "zarray": "application/x-zarr",
    "zgroup": "application/x-zarr",
    "zattrs": "application/x-zarr",
    "zmetadata": "application/x-zarr",
}

#: (offset, signature, mime), checked in order. These are "strong": a match is a
#: clear statement of the format, strong enough to overrule a file's extension.
SIGNATURES: tuple[tuple[int, bytes, str], ...] = (
    (128, b"DICM", "application/dicom"),  # first: a DICOM preamble may itself look like a TIFF header
    (0, b"\x89PNG\r\n\x1a\n", "image/png"),
    (0, b"\xff\xd8\xff", "image/jpeg"),
    (0, b"GIF87a", "image/gif"),
    (0, b"GIF89a", "image/gif"),
    (0, b"II*\x00", "image/tiff"),
    (0, b"MM\x00*", "image/tiff"),
    (0, b"II+\x00", "image/tiff"),
    (0, b"%PDF-", "application/pdf"),
    (0, b"\x89HDF\r\n\x1a\n", "application/x-hdf5"),
    (512, b"\x89HDF\r\n\x1a\n", "application/x-hdf5"),  # after a user block (MATLAB 7.3 files)
    (1024, b"\x89HDF\r\n\x1a\n", "application/x-hdf5"),
    (0, b"\x0e\x03\x13\x01", "application/x-hdf"),
    (0, b"CDF\x01", "application/x-netcdf"),
    (0, b"CDF\x02", "application/x-netcdf"),
    (0, b"CDF\x05", "application/x-netcdf"),
    (0, b"SIMPLE  =", "application/fits"),
    (0, b"\x93NUMPY", "application/x-npy"),
    (0, b"PK\x03\x04", "application/zip"),
    (0, b"PK\x05\x06", "application/zip"),  # an empty zip
    (0, b"\x1f\x8b", "application/gzip"),
    (0, b"BZh", "application/x-bzip2"),
    (0, b"\xfd7zXZ\x00", "application/x-xz"),
    (0, b"\x28\xb5\x2f\xfd", "application/zstd"),
    (0, b"7z\xbc\xaf\x27\x1c", "application/x-7z-compressed"),
    (0, b"Rar!\x1a\x07", "application/vnd.rar"),
    (0, b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "application/x-ole-storage"),
    (0, b"MATLAB 5.0 MAT-file", "application/x-matlab-data"),
    (0, b"SQLite format 3\x00", "application/vnd.sqlite3"),
    (0, b"\x7fELF", "application/x-executable"),
    (0, b"PAR1", "application/vnd.apache.parquet"),
    (0, b"\x80\x02", "application/x-pickle"),
    (0, b"\x80\x03", "application/x-pickle"),
    (0, b"\x80\x04\x95", "application/x-pickle"),
    (0, b"\x80\x05\x95", "application/x-pickle"),
    (0, b"OggS", "audio/ogg"),
    (0, b"fLaC", "audio/flac"),
    (257, b"ustar", "application/x-tar"),
    (0, b"wOFF", "font/woff"),
    (0, b"wOF2", "font/woff2"),
    (0, b"ttcf", "font/collection"),
    (0, b"OTTO", "font/otf"),
    (0, b"StartFontMetrics", "application/x-font-afm"),
    (0, b"ARROW1", "application/vnd.apache.arrow.file"),
    (0, b"\x00\x00\x00\x0cjP  \r\n\x87\n", "image/jp2"),
    (0, b"\xffO\xffQ", "image/jp2"),
    (0, b"8BPS", "image/vnd.adobe.photoshop"),
    (0, b"<stata_dta>", "application/x-stata-dta"),
    (0, b"$FL2", "application/x-spss-sav"),
    (0, b"$FL3", "application/x-spss-sav"),
    (0, b"%!PS", "application/postscript"),
    (0, b"\xc5\xd0\xd3\xc6", "application/postscript"),
    (0, b"<?xml", "application/xml"),
    (0, b"\xef\xbb\xbf<?xml", "application/xml"),
)

#: RIFF containers: the format sits at offset 8.
RIFF_FORMATS = {b"WEBP": "image/webp", b"WAVE": "audio/wav", b"AVI ": "video/x-msvideo"}
#: MIME types that say "some bytes" and nothing more.
GENERIC_MIMES = frozenset({"application/octet-stream", "text/plain", "application/x-empty"})


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


def signature_mime(head: bytes) -> str | None:
    """Mime type from a strong magic signature in the head, or None."""
    for offset, sig, mime in SIGNATURES:
        if head[offset : offset + len(sig)] == sig:
            return mime
    if head[:4] == b"RIFF" and head[8:12] in RIFF_FORMATS:
        return RIFF_FORMATS[head[8:12]]
    if head[4:8] == b"ftyp":
        return "video/mp4"
    if head[:2] == b"BM" and len(head) >= 26 and head[6:10] == b"\x00\x00\x00\x00" and head[14] in (12, 40, 52, 56,
                                                                                                    64, 108, 124):
        return "image/bmp"  # "BM" alone is too weak: also check the reserved bytes and the DIB header size
    return None


def mime_from_head(head: bytes) -> str | None:
    """Mime type from the first bytes of a file: signatures, then libmagic, then a text sniff."""
    global _MAGIC, _MAGIC_LOADED
    if not head:
        return "application/x-empty"
    strong = signature_mime(head)
    if strong:
        return strong
    if not _MAGIC_LOADED:
        _MAGIC, _MAGIC_LOADED = _libmagic(), True
    if _MAGIC is not None:
        try:
            found = str(_MAGIC.from_buffer(head))  # type: ignore[attr-defined]
        except Exception:  # noqa: BLE001 - libmagic failures fall through to our sniff
            found = ""
        # libmagic calls every table "text/plain": our sniff tells tables and JSON apart
        if found and found not in GENERIC_MIMES and found not in ("text/csv", "application/csv"):
            return found
    return sniff_text(head)


def decode_text_head(head: bytes) -> str | None:
    """The head as text, or None when it is binary (NULs, or not UTF-8 nor mostly printable Latin-1)."""
    if b"\x00" in head:
        return None
    try:
        return head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start >= len(head) - 4:  # a multi-byte char cut at the end of the head
            return head[: exc.start].decode("utf-8")
    control = sum(b < 32 and b not in (9, 10, 12, 13) for b in head)
    if control / len(head) > 0.01:
        return None
    return head.decode("latin-1")


def looks_like_table(text: str) -> str | None:
    """The table's mime type when the text is a delimited table (a preamble allowed), else None.

    A table is at least three non-blank lines (two when both have numbers) splitting
    into the same number (>= 2) of fields, after at most a few preamble lines.
    """
    lines = text.splitlines()
    if len(lines) > 1 and not text.endswith(("\n", "\r")):
        lines = lines[:-1]  # the head may cut the last line
    lines = [ln for ln in lines if ln.strip()][:60]
    for delim, mime in ((",", "text/csv"), ("\t", "text/tab-separated-values"), (";", "text/csv"),
                        ("|", "text/csv"), (" ", "text/csv")):
        counts = [len(ln.split()) if delim == " " else ln.count(delim) + 1 for ln in lines]
        for start in range(min(len(lines), 6)):
            tail = counts[start:]
            if tail and tail[0] >= 2 and all(c == tail[0] for c in tail):
                numeric = sum(_has_number(ln, delim) for ln in lines[start:])
                # whitespace splits any prose: there, demand numbers on (nearly) every line
                if len(tail) >= 3 and (delim != " " or numeric >= len(tail) - 1):
                    return mime
                if len(tail) == 2 and numeric >= 1:
                    return mime
                break
    return None


def _has_number(line: str, delim: str) -> bool:
    for cell in (line.split() if delim == " " else line.split(delim)):
        try:
            float(cell)
            return True
        except ValueError:
            continue
    return False


def sniff_text(head: bytes) -> str:
    """Tell JSON, XML, HTML, code, tables and free text apart from a text head; binary otherwise."""
    text = decode_text_head(head)
    if text is None:
        return "application/octet-stream"
    stripped = text.lstrip("\ufeff \t\r\n")
    if stripped.startswith(("{", "[")):
        return "application/json"
    lowered = stripped[:64].lower()
    if lowered.startswith(("<!doctype html", "<html")):
        return "text/html"
    if stripped.startswith("<") and len(stripped) > 1 and (stripped[1].isalpha() or stripped[1] in "?!"):
        return "application/xml"
    if stripped.startswith("#!") and "python" in stripped.split("\n", 1)[0]:
        return "text/x-python"
    return looks_like_table(text) or "text/plain"


def read_head(path: str, n: int = HEAD_BYTES) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(n)
