"""HDF5 (h5, hdf5, he5; also MATLAB 7.3 and netCDF-4 files by content): the object tree.

Every group and dataset with path, shape, dtype, compression, chunks and
attributes, from ``visititems`` over headers only: no dataset's data is read, so
a 100 GB file costs as much as its metadata. Large attribute values are summarised
(shape and dtype) rather than copied.
"""

from __future__ import annotations

from typing import Any

from extractors.base import Extractor, ExtractorError, require

NAME = "hdf5"
VERSION = "2.0"
MAX_OBJECTS = 5_000
MAX_ATTRS = 64
MAX_ATTR_ELEMENTS = 32
MAX_STR = 500


def attr_value(value: Any) -> Any:
    """A JSON-friendly, size-capped form of an HDF5/netCDF attribute value."""
    import numpy as np

    if isinstance(value, bytes):
        return value[:MAX_STR].decode("utf-8", errors="replace")
    if isinstance(value, str):
        return value[:MAX_STR]
    if isinstance(value, np.ndarray):
        if value.size > MAX_ATTR_ELEMENTS:
            return {"shape": list(value.shape), "dtype": str(value.dtype)}
        if value.dtype.kind in "SUO":
            return [attr_value(v) for v in value.ravel().tolist()]
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (int, float, bool)) or value is None:
        return value
    return str(value)[:MAX_STR]


def _attrs(obj: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for i, name in enumerate(obj.attrs):
        if i >= MAX_ATTRS:
            out["_truncated"] = True
            break
        try:
            out[name] = attr_value(obj.attrs[name])
        except (OSError, TypeError, ValueError) as exc:  # unreadable attribute types
            out[name] = f"<unreadable: {type(exc).__name__}>"
    return out


def _dtype(ds: Any) -> str:
    import h5py

    info = h5py.check_string_dtype(ds.dtype)
    if info is not None:
        return f"string({info.encoding}{'' if info.length is None else f', {info.length}'})"
    return str(ds.dtype)


def extract_hdf5(path: str) -> dict[str, Any]:
    h5py = require("h5py", package="h5py")

    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise ExtractorError(f"not a readable HDF5 file: {exc}") from None
    groups: list[dict[str, Any]] = [{}]
    datasets: list[dict[str, Any]] = []
    counts = {"groups": 1, "datasets": 0, "other": 0}

    def visit(name: str, obj: Any) -> None:
        if isinstance(obj, h5py.Dataset):
            counts["datasets"] += 1
            if len(datasets) < MAX_OBJECTS:
                datasets.append({
                    "path": "/" + name, "shape": list(obj.shape) if obj.shape is not None else None,
                    "dtype": _dtype(obj), "compression": obj.compression, "compression_opts":
                    obj.compression_opts if isinstance(obj.compression_opts, (int, type(None))) else
                    str(obj.compression_opts), "chunks": list(obj.chunks) if obj.chunks else None,
                    "maxshape": [m if m is not None else -1 for m in obj.maxshape] if obj.maxshape else None,
                    "fillvalue": attr_value(obj.fillvalue), "attributes": _attrs(obj),
                })
        elif isinstance(obj, h5py.Group):
            counts["groups"] += 1
            if len(groups) < MAX_OBJECTS:
                groups.append({"path": "/" + name, "attributes": _attrs(obj)})
        else:
            counts["other"] += 1

    with f:
        groups[0] = {"path": "/", "attributes": _attrs(f)}
        f.visititems(visit)
        userblock = f.userblock_size
        libver = f.libver
    return {
        "format": "hdf5",
        "userblock_size": userblock,
        "libver": list(libver),
        "n_groups": counts["groups"],
        "n_datasets": counts["datasets"],
        "groups": groups,
        "datasets": datasets,
        "truncated": counts["groups"] > len(groups) or counts["datasets"] > len(datasets),
    }


HDF5 = Extractor(
    name=NAME,
    version=VERSION,
    func=extract_hdf5,
    # .hdf is mostly HDF4 (not readable by h5py) and .mat mostly MATLAB 5: those reach
    # this extractor by content (the HDF5 signature), never by extension
    extensions=frozenset({"h5", "hdf5", "he5", "h5ad", "nxs"}),
    mimes=frozenset({"application/x-hdf5"}),
    kind="binary",
    preload=("h5py",),
)
