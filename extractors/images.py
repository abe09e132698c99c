"""Images (png, jpg, tif, gif, bmp, webp): format, size, mode, EXIF, dominant colours.

Pillow's decompression-bomb guard stays on and its warning is raised as an error,
so an image past ``Image.MAX_IMAGE_PIXELS`` is reported, never decoded. Dominant
colours come from a small thumbnail (JPEG draft mode decodes at reduced scale),
so cost does not grow with the image's resolution.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

from extractors.base import Extractor, ExtractorError

NAME = "images"
VERSION = "2.1"
THUMB = 64
N_COLOURS = 5
MAX_EXIF_VALUE = 200


def _exif(img: Any) -> dict[str, Any]:
    from PIL import ExifTags

    out: dict[str, Any] = {}
    try:
        exif = img.getexif()
    except Exception:  # noqa: BLE001 - a broken EXIF block must not lose the image facts
        return {}
    items = list(exif.items())
    for ifd in (ExifTags.IFD.Exif, ExifTags.IFD.GPSInfo):
        try:
            items += list(exif.get_ifd(ifd).items())
        except Exception:  # noqa: BLE001
            continue
    for tag, value in items:
        name = ExifTags.TAGS.get(tag) or ExifTags.GPSTAGS.get(tag) or str(tag)
        if isinstance(value, bytes):
            if len(value) > MAX_EXIF_VALUE:
                continue  # maker notes and thumbnails: binary blobs
            value = value.decode("ascii", errors="replace").rstrip("\x00")
        elif isinstance(value, (tuple, list)):
            value = [float(v) if not isinstance(v, (int, str)) else v for v in value[:16]]
        elif not isinstance(value, (int, str)):
            try:
                value = float(value)
            except (TypeError, ValueError):
                value = str(value)
        if isinstance(value, str):
            value = value[:MAX_EXIF_VALUE]
        out[name] = value
    return out


def dominant_colours(img: Any, n: int = N_COLOURS) -> list[dict[str, Any]]:
    """The ``n`` most common colours of a thumbnail, as hex and pixel fraction."""
    from PIL import Image

    frame = img.copy() if img.mode in ("RGB", "RGBA", "L", "P", "LA", "PA") else None
    if frame is None:
        try:
            if img.mode.startswith(("I", "F")):  # 16-bit and float scans: stretch min..max into 8-bit grey
                grey = img.convert("F")
                lo, hi = grey.getextrema()
                scale = 255.0 / (hi - lo) if hi > lo else 0.0
                frame = grey.point(lambda v: (v - lo) * scale).convert("L")
            else:
                frame = img.convert("RGB")
        except (ValueError, OSError):
            return []
    frame.thumbnail((THUMB, THUMB))
    rgb = frame.convert("RGB")
    quant = rgb.quantize(colors=n, method=Image.Quantize.MEDIANCUT)
    palette = quant.getpalette() or []
    counts = sorted(quant.getcolors() or [], reverse=True)
    total = sum(c for c, _ in counts) or 1
    out = []
    for count, index in counts[:n]:
        r, g, b = palette[3 * index : 3 * index + 3]
        out.append({"rgb": f"#{r:02x}{g:02x}{b:02x}", "fraction": round(count / total, 4)})
    return out


TIFF_TAGS = {256: "ImageWidth", 257: "ImageLength", 258: "BitsPerSample", 259: "Compression",
             262: "PhotometricInterpretation", 270: "ImageDescription", 271: "Make", 272: "Model", 277:
             "SamplesPerPixel", 284: "PlanarConfiguration", 296: "ResolutionUnit", 305: "Software", 306: "DateTime",
             315: "Artist", 316: "HostComputer", 317: "Predictor", 322: "TileWidth", 323: "TileLength",
             338: "ExtraSamples", 339: "SampleFormat", 33432: "Copyright", 42112: "GDAL_METADATA",
             42113: "GDAL_NODATA"}
GEO_TAGS = {33550: "ModelPixelScale", 33922: "ModelTiepoint", 34264: "ModelTransformation"}
GEO_KEYS = {1024: "GTModelType", 1025: "GTRasterType", 1026: "GTCitation", 2048: "GeographicType",
            2049: "GeogCitation", 2050: "GeogGeodeticDatum", 2054: "GeogAngularUnits", 2056: "GeogEllipsoid",
            3072: "ProjectedCSType", 3073: "PCSCitation", 3074: "Projection", 3075: "ProjCoordTrans",
            3076: "ProjLinearUnits", 4096: "VerticalCSType", 4099: "VerticalUnits"}
TIFF_TYPES = {1: ("B", 1), 2: ("s", 1), 3: ("H", 2), 4: ("I", 4), 5: ("II", 8), 6: ("b", 1), 7: ("B", 1),
              8: ("h", 2), 9: ("i", 4), 10: ("ii", 8), 11: ("f", 4), 12: ("d", 8), 16: ("Q", 8)}
MAX_IFDS = 10_000


def _tag_value(v: Any) -> Any:
    if isinstance(v, bytes):
        return v[:MAX_EXIF_VALUE].decode("latin-1").rstrip("\x00")
    if isinstance(v, str):
        return v[: MAX_EXIF_VALUE * 5]
    if isinstance(v, (tuple, list)):
        return [_tag_value(x) for x in v[:32]]
    if isinstance(v, (int, bool)) or v is None:
        return v
    try:
        return float(v)
    except (TypeError, ValueError):
        return str(v)[:MAX_EXIF_VALUE]


def _geokeys(tags: dict[int, Any]) -> dict[str, Any]:
    """GeoTIFF keys from the GeoKeyDirectory (34735) with its double (34736) and ASCII (34737) params."""
    directory = tags.get(34735)
    if not directory or len(directory) < 4:
        return {}
    doubles, ascii_ = tags.get(34736) or (), tags.get(34737) or ""
    if isinstance(ascii_, bytes):
        ascii_ = ascii_.decode("latin-1")
    out: dict[str, Any] = {}
    for i in range(min(int(directory[3]), 100)):
        entry = directory[4 + 4 * i : 8 + 4 * i]
        if len(entry) < 4:
            break
        key, loc, count, value = (int(x) for x in entry)
        name = GEO_KEYS.get(key, str(key))
        if loc == 0:
            out[name] = value
        elif loc == 34737:
            out[name] = str(ascii_)[value : value + count].rstrip("|")
        elif loc == 34736:
            out[name] = [float(x) for x in list(doubles)[value : value + count]]
    return out


def _tiff_tags(img: Any) -> dict[str, Any]:
    tags = dict(getattr(img, "tag_v2", {}) or {})
    out: dict[str, Any] = {name: _tag_value(tags[t]) for t, name in TIFF_TAGS.items() if t in tags}
    geo = {name: _tag_value(tags[t]) for t, name in GEO_TAGS.items() if t in tags}
    keys = _geokeys(tags)
    if keys:
        geo["keys"] = keys
    if geo:
        out["geotiff"] = geo
    return out


def _tiff_ifds(path: str) -> dict[str, Any]:
    """First-IFD tags and the page count of a TIFF that Pillow cannot open (a codec or layout it lacks)."""
    import struct

    with open(path, "rb") as fh:
        head = fh.read(16)
        e = "<" if head[:2] == b"II" else ">"
        big = struct.unpack_from(e + "H", head, 2)[0] == 43
        offset = struct.unpack_from(e + "Q", head, 8)[0] if big else struct.unpack_from(e + "I", head, 4)[0]
        size = os.path.getsize(path)
        pages, first, seen = 0, {}, set()
        while offset and offset < size and pages < MAX_IFDS and offset not in seen:
            seen.add(offset)
            fh.seek(offset)
            n = struct.unpack(e + ("Q" if big else "H"), fh.read(8 if big else 2))[0]
            entry = 20 if big else 12
            raw = fh.read(min(n, 4096) * entry)
            if pages == 0:
                for i in range(len(raw) // entry):
                    rec = raw[i * entry : (i + 1) * entry]
                    tag, typ = struct.unpack_from(e + "HH", rec)
                    count = struct.unpack_from(e + ("Q" if big else "I"), rec, 4)[0]
                    fmt, width = TIFF_TYPES.get(typ, ("B", 1))
                    inline = rec[12:] if big else rec[8:]
                    if tag in TIFF_TAGS and count * width <= len(inline) and typ not in (2, 5, 10):
                        vals = struct.unpack_from(e + fmt * count, inline)
                        first[TIFF_TAGS[tag]] = vals[0] if count == 1 else list(vals)
            pages += 1
            tail = fh.read(8 if big else 4)
            if len(tail) < (8 if big else 4):
                break
            offset = struct.unpack(e + ("Q" if big else "I"), tail)[0]
    if not pages:
        raise ExtractorError("TIFF without a readable IFD")
    out: dict[str, Any] = {"format": "TIFF", "bigtiff": big, "pages": pages, "tiff_tags": first,
                           "width": first.get("ImageWidth"), "height": first.get("ImageLength")}
    return out


def extract_images(path: str) -> dict[str, Any]:
    from PIL import Image, UnidentifiedImageError

    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        warnings.simplefilter("ignore", UserWarning)  # "palette with transparency", "corrupt EXIF": noise here
        try:
            img = Image.open(path)
        except UnidentifiedImageError as exc:
            with open(path, "rb") as fh:
                magic = fh.read(4)
            if magic in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
                try:
                    return {**_tiff_ifds(path), "decoded": False, "pillow_error": str(exc)[:200]}
                except Exception as inner:  # noqa: BLE001 - struct.error on a cut IFD, OSError, ExtractorError
                    raise ExtractorError(f"not a readable image: {exc}; {inner}") from None
            raise ExtractorError(f"not a readable image: {exc}") from None
        with img:
            width, height = img.size
            out: dict[str, Any] = {
                "format": img.format,
                "width": width,
                "height": height,
                "mode": img.mode,
                "bands": list(img.getbands()),
                "frames": getattr(img, "n_frames", 1),
                "animated": bool(getattr(img, "is_animated", False)),
            }
            dpi = img.info.get("dpi")
            if dpi:
                out["dpi"] = [round(float(d), 3) for d in dpi]
            if "icc_profile" in img.info:
                out["icc_profile"] = True
            out["exif"] = _exif(img)
            if img.format in ("TIFF", "MPO") or hasattr(img, "tag_v2"):
                tags = _tiff_tags(img)
                if tags:
                    out["tiff_tags"] = tags
            if img.format == "JPEG":  # decode at 1/2..1/8 scale: enough for a thumbnail
                img.draft("RGB", (THUMB * 4, THUMB * 4))
            elif img.format == "JPEG2000":  # decode at a reduced resolution level
                factor = 0
                while max(width, height) >> (factor + 1) >= THUMB * 4 and factor < 5:
                    factor += 1
                img.reduce = factor  # type: ignore[attr-defined,method-assign]
            img.load()  # decode once: a truncated file fails here, clearly
            out["dominant_colours"] = dominant_colours(img)
    return out


IMAGES = Extractor(
    name=NAME,
    version=VERSION,
    func=extract_images,
    extensions=frozenset({"png", "jpg", "jpeg", "tif", "tiff", "gif", "bmp", "webp", "jp2", "j2k", "jpx", "jpf",
                          "ico", "ppm", "pgm", "pbm", "tga", "psd", "icns", "dds", "pcx", "sgi", "im"}),
    mimes=frozenset({"image/png", "image/jpeg", "image/tiff", "image/gif", "image/bmp", "image/webp",
                     "image/x-ms-bmp", "image/jp2", "image/x-icon", "image/vnd.microsoft.icon",
                     "image/x-portable-pixmap", "image/x-portable-graymap", "image/x-portable-bitmap",
                     "image/vnd.adobe.photoshop", "image/x-tga"}),
    kind="binary",
    preload=("PIL.Image",),
)
