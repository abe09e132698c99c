"""Office documents (docx/docm, pptx, odt/ods/odp): core properties, application facts, structure counts.

OOXML and OpenDocument files are zip containers whose metadata sits in small XML
parts (``docProps/core.xml``, ``docProps/app.xml``, ``meta.xml``): only those are
read, through defusedxml, each capped at ``MAX_PART`` bytes inflated, so a zip
bomb or a 500-page document costs what its metadata costs. Slides and media are
counted from the zip directory. Spreadsheets (xlsx) stay with ``tabular``, which
reads their cells.
"""

from __future__ import annotations

import re
import zipfile
from typing import Any

from extractors.base import Extractor, ExtractorError, NotMyFormat

NAME = "office"
VERSION = "1.0"
MAX_PART = 2 * 1024 * 1024
MAX_VALUE = 500
_SLIDE = re.compile(r"^ppt/slides/slide\d+\.xml$")


def _part(zf: zipfile.ZipFile, name: str) -> bytes | None:
    try:
        info = zf.getinfo(name)
    except KeyError:
        return None
    if info.file_size > MAX_PART:
        raise ExtractorError(f"{name} inflates to {info.file_size} bytes: refused")
    with zf.open(info) as fh:
        return fh.read(MAX_PART + 1)[:MAX_PART]


def _props(raw: bytes | None) -> dict[str, Any]:
    """Child elements of a properties part as {local name: text}."""
    if not raw:
        return {}
    try:
        from defusedxml.ElementTree import fromstring
    except ImportError:
        raise ExtractorError("Office metadata needs defusedxml: install the science extra "
                             "(pip install 'prefect-xtract[science]')") from None
    root = fromstring(raw)
    out: dict[str, Any] = {}
    for el in root.iter():
        if el is root or len(el):
            continue
        name = el.tag.rsplit("}", 1)[-1]
        text = (el.text or "").strip()
        if text and name not in out:
            out[name] = text[:MAX_VALUE]
    return out


def extract_office(path: str) -> dict[str, Any]:
    try:
        zf = zipfile.ZipFile(path)
    except zipfile.BadZipFile as exc:
        raise ExtractorError(f"damaged Office document (zip): {exc}") from None
    with zf:
        names = zf.namelist()
        mimetype = (_part(zf, "mimetype") or b"").decode("ascii", errors="replace").strip()
        if "[Content_Types].xml" in names:
            kind = ("docx" if "word/document.xml" in names else "pptx" if "ppt/presentation.xml" in names
                    else "xlsx" if "xl/workbook.xml" in names else "ooxml")
            out: dict[str, Any] = {"format": kind, "core": _props(_part(zf, "docProps/core.xml")),
                                   "app": _props(_part(zf, "docProps/app.xml"))}
            custom = _props(_part(zf, "docProps/custom.xml"))
            if custom:
                out["custom"] = custom
            if kind == "pptx":
                out["slides"] = sum(bool(_SLIDE.match(n)) for n in names)
            out["media"] = sum(n.split("/")[1:2] == ["media"] for n in names)
            out["macros"] = any(n.endswith("vbaProject.bin") for n in names)
        elif mimetype.startswith("application/vnd.oasis.opendocument"):
            out = {"format": mimetype.rsplit(".", 1)[-1], "mimetype": mimetype,
                   "meta": _props(_part(zf, "meta.xml"))}
            stats = re.search(rb"<meta:document-statistic([^>]*)/>", _part(zf, "meta.xml") or b"")
            if stats:
                out["statistics"] = {k.decode(): int(v) for k, v in re.findall(rb'meta:([\w-]+)="(\d+)"',
                                                                                 stats.group(1))}
        else:
            raise NotMyFormat("a zip without Office document parts")
    out["n_parts"] = len(names)
    return out


OFFICE = Extractor(
    name=NAME,
    version=VERSION,
    func=extract_office,
    extensions=frozenset({"docx", "docm", "dotx", "pptx", "pptm", "ppsx", "odt", "ods", "odp", "odg"}),
    mimes=frozenset({"application/vnd.openxmlformats-officedocument.wordprocessingml.document",
                     "application/vnd.openxmlformats-officedocument.presentationml.presentation",
                     "application/vnd.oasis.opendocument.text", "application/vnd.oasis.opendocument.spreadsheet",
                     "application/vnd.oasis.opendocument.presentation"}),
    kind="any",
    accepts=frozenset({"application/zip"}),
    preload=("defusedxml.ElementTree",),
)
