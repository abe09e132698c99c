"""Images (png, jpg, tif, gif, bmp, webp): format, size, mode, EXIF, dominant colours.

Pillow's decompression-bomb guard stays on and its warning is raised as an error,
so an image past ``Image.MAX_IMAGE_PIXELS`` is reported, never decoded. Dominant
colours come from a small thumbnail (JPEG draft mode decodes at reduced scale),
so cost does not grow with the image's resolution.
"""

from __future__ import annotations

import warnings
from typing import Any

from extractors.base import Extractor, ExtractorError

NAME = "images"
VERSION = "2.0"
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


def extract_images(path: str) -> dict[str, Any]:
    from PIL import Image, UnidentifiedImageError

    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            img = Image.open(path)
        except UnidentifiedImageError as exc:
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
            if img.format == "JPEG":  # decode at 1/2..1/8 scale: enough for a thumbnail
                img.draft("RGB", (THUMB * 4, THUMB * 4))
            img.load()  # decode once: a truncated file fails here, clearly
            out["dominant_colours"] = dominant_colours(img)
    return out


IMAGES = Extractor(
    name=NAME,
    version=VERSION,
    func=extract_images,
    extensions=frozenset({"png", "jpg", "jpeg", "tif", "tiff", "gif", "bmp", "webp"}),
    mimes=frozenset({"image/png", "image/jpeg", "image/tiff", "image/gif", "image/bmp", "image/webp",
                     "image/x-ms-bmp"}),
    kind="binary",
)
