"""DICOM (dcm, dicom, DICOMDIR, and extension-less instances): what a clinician or researcher searches by.

Modality, SOP class, study/series descriptions and dates, image geometry (rows,
columns, frames, bits, spacing, orientation), acquisition parameters and the
transfer syntax, read with pydicom up to the pixel data (``stop_before_pixels``;
long values deferred), so the cost does not grow with the image. Patient-identifying
elements (names, IDs, birth dates, addresses, institution and physician names,
UIDs that link studies) are never copied: the output is a whitelist, and
``XTRACT_DICOM_PATIENT=1`` adds only sex, age, size and weight.
"""

from __future__ import annotations

import os
import struct
import warnings
from functools import lru_cache
from typing import Any

from extractors.base import Extractor, ExtractorError, NotMyFormat, require

NAME = "dicom"
VERSION = "1.0"
MAX_STR = 200
MAX_RECORDS = 5_000

#: Elements copied into the record (keyword order is the output order).
FIELDS = (
    "Modality", "SOPClassUID", "ImageType", "StudyDescription", "SeriesDescription", "ProtocolName",
    "BodyPartExamined", "StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate", "StudyTime",
    "SeriesNumber", "InstanceNumber", "AcquisitionNumber", "Manufacturer", "ManufacturerModelName",
    "SoftwareVersions", "Rows", "Columns", "NumberOfFrames", "SamplesPerPixel", "PhotometricInterpretation",
    "BitsAllocated", "BitsStored", "PixelRepresentation", "PixelSpacing", "SliceThickness",
    "SpacingBetweenSlices", "SliceLocation", "ImageOrientationPatient", "ImagePositionPatient",
    "PatientPosition", "MagneticFieldStrength", "EchoTime", "RepetitionTime", "InversionTime", "FlipAngle",
    "ScanningSequence", "SequenceName", "KVP", "ExposureTime", "XRayTubeCurrent", "ConvolutionKernel",
    "RescaleIntercept", "RescaleSlope", "WindowCenter", "WindowWidth", "Laterality", "ViewPosition",
    "ImageComments", "SpecificCharacterSet",
)
PATIENT_FIELDS = ("PatientSex", "PatientAge", "PatientSize", "PatientWeight")
_VRS = {b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FL", b"FD", b"IS", b"LO", b"LT", b"OB", b"OD",
        b"OF", b"OL", b"OW", b"PN", b"SH", b"SL", b"SQ", b"SS", b"ST", b"TM", b"UC", b"UI", b"UL", b"UN",
        b"UR", b"US", b"UT", b"OV", b"SV", b"UV"}


def sniff_dicom(head: bytes) -> bool:
    """A DICOM data set without the 128-byte preamble: two plausible elements of group 0x0002/0x0008 in a row."""
    if head[128:132] == b"DICM":
        return True
    for e in ("<", ">"):
        pos, seen = 0, 0
        while seen < 2 and pos + 8 <= len(head):
            group, elem = struct.unpack_from(e + "HH", head, pos)
            if group not in (0x0002, 0x0008) or (seen == 0 and elem > 0x0100):
                break
            if head[pos + 4 : pos + 6] in _VRS:  # explicit VR
                vr = head[pos + 4 : pos + 6]
                if vr in (b"OB", b"OW", b"OF", b"SQ", b"UT", b"UN", b"UC", b"UR", b"OD", b"OL", b"OV"):
                    length = struct.unpack_from(e + "I", head, pos + 8)[0] if pos + 12 <= len(head) else 0
                    pos += 12 + length
                else:
                    pos += 8 + struct.unpack_from(e + "H", head, pos + 6)[0]
            else:  # implicit VR: a 4-byte length
                length = struct.unpack_from(e + "I", head, pos + 4)[0]
                if length == 0 or length > 1024:
                    break
                pos += 8 + length
            seen += 1
        if seen == 2:
            return True
    return False


def _value(v: Any) -> Any:
    from pydicom.multival import MultiValue
    from pydicom.valuerep import PersonName

    if isinstance(v, (MultiValue, list, tuple)):
        return [_value(x) for x in list(v)[:16]]
    if isinstance(v, bytes):
        return None  # binary blobs say nothing searchable
    if isinstance(v, PersonName):
        return None
    if isinstance(v, float) and (v != v or v in (float("inf"), float("-inf"))):
        return None
    if isinstance(v, (int, float, bool)) or v is None:
        return v
    try:
        f = float(v) if type(v).__name__ in ("DSfloat", "DSdecimal", "IS", "ISfloat") else None
    except (TypeError, ValueError):
        f = None
    if f is not None:
        return int(f) if f.is_integer() and type(v).__name__ == "IS" else f
    return str(v)[:MAX_STR]


@lru_cache(maxsize=4)
def _tags(fields: tuple[str, ...]) -> tuple[tuple[str, int], ...]:
    from pydicom.datadict import tag_for_keyword

    return tuple((kw, tag) for kw in fields if (tag := tag_for_keyword(kw)) is not None)


def extract_dicom(path: str) -> dict[str, Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom's notes on non-conformant values: the record still holds
        return _extract_dicom(path)


def _extract_dicom(path: str) -> dict[str, Any]:
    pydicom = require("pydicom", package="pydicom")
    from pydicom.errors import InvalidDicomError

    with open(path, "rb") as fh:
        head = fh.read(2048)
    preamble = head[128:132] == b"DICM"
    if not preamble and not sniff_dicom(head):
        raise NotMyFormat("no DICM marker and no DICOM data set at the start")
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, defer_size=4096, force=not preamble)
    except InvalidDicomError as exc:
        raise NotMyFormat(f"not DICOM: {exc}") from None
    except (EOFError, struct.error, ValueError, OSError, KeyError, TypeError) as exc:
        raise ExtractorError(f"damaged DICOM: {type(exc).__name__}: {exc}") from None
    out: dict[str, Any] = {"format": "dicom", "preamble": preamble}
    meta = getattr(ds, "file_meta", None)
    ts = getattr(meta, "TransferSyntaxUID", None) if meta is not None else None
    if ts is not None:
        out["transfer_syntax"] = {"uid": str(ts), "name": getattr(ts, "name", str(ts))}
    fields = FIELDS + (PATIENT_FIELDS if os.environ.get("XTRACT_DICOM_PATIENT") == "1" else ())
    for kw, tag in _tags(fields):
        if tag not in ds:  # a dict lookup by tag: cheaper than pydicom's keyword access
            continue
        try:
            elem = ds[tag].value
        except Exception:  # noqa: BLE001 - one malformed element must not lose the others
            continue
        if elem is None or elem == "":
            continue
        value = _value(elem)
        if value is not None and value != []:
            out[kw] = value
    sop = out.get("SOPClassUID")
    if sop:
        from pydicom.uid import UID

        out["SOPClassName"] = UID(str(sop)).name
    records = ds.get("DirectoryRecordSequence")
    if records is not None:  # a DICOMDIR: what the media holds
        counts: dict[str, int] = {}
        for i, rec in enumerate(records):
            if i >= MAX_RECORDS:
                break
            kind = str(rec.get("DirectoryRecordType", "?"))
            counts[kind] = counts.get(kind, 0) + 1
        out["directory_records"] = counts
        out["n_directory_records"] = len(records)
    out["n_elements"] = len(ds)
    if len(out) <= 3:
        raise ExtractorError("DICOM data set without readable elements")
    return out


DICOM = Extractor(
    name=NAME,
    version=VERSION,
    func=extract_dicom,
    extensions=frozenset({"dcm", "dicom", "dic", "ima"}),
    mimes=frozenset({"application/dicom"}),
    kind="any",
    sniff=sniff_dicom,
    priority=90,
    preload=("pydicom",),
)
