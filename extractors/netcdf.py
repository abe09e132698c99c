"""netCDF (nc, nc4, cdf; netCDF-3 classic/64-bit and netCDF-4/HDF5): the CDL header.

Format, dimensions with their sizes and unlimited flag, variables with dims,
dtype, shape and attributes, global attributes, and netCDF-4 sub-groups. Only the
header is read (``netCDF4.Dataset`` is lazy): no variable data is touched.
"""

from __future__ import annotations

from typing import Any

from extractors.base import Extractor, ExtractorError, NotMyFormat, require
from extractors.hdf5 import attr_value

NAME = "netcdf"
VERSION = "2.1"
MAX_VARIABLES = 2_000
MAX_GROUPS = 500


def _dtype(var: Any) -> str:
    dtype = var.dtype
    if dtype is str:
        return "string"
    return str(getattr(dtype, "name", None) or dtype)  # numpy dtypes, or netCDF4 compound/vlen types


def _attrs(obj: Any) -> dict[str, Any]:
    return {name: attr_value(obj.getncattr(name)) for name in obj.ncattrs()}


def _describe(grp: Any, path: str) -> dict[str, Any]:
    variables = []
    for i, (name, var) in enumerate(grp.variables.items()):
        if i >= MAX_VARIABLES:
            break
        variables.append({"name": name, "dims": list(var.dimensions), "dtype": _dtype(var),
                          "shape": list(var.shape), "attributes": _attrs(var)})
    return {
        "path": path,
        "dimensions": {name: {"size": len(d), "unlimited": d.isunlimited()} for name, d in grp.dimensions.items()},
        "variables": variables,
        "n_variables": len(grp.variables),
        "attributes": _attrs(grp),
    }


_MAGICS = (b"CDF\x01", b"CDF\x02", b"CDF\x05", b"\x89HDF")


def extract_netcdf(path: str) -> dict[str, Any]:
    with open(path, "rb") as fh:
        head = fh.read(1032)
    if head and not (head[:4] in _MAGICS or head[512:516] == b"\x89HDF" or head[1024:1028] == b"\x89HDF"):
        # a NASA CDF, a CDL text file or anything else named .cdf/.nc: let the chain find its reader
        raise NotMyFormat("no netCDF-3 or HDF5 signature")
    netCDF4 = require("netCDF4", package="netCDF4")

    try:
        ds = netCDF4.Dataset(path, "r")
    except OSError as exc:
        raise ExtractorError(f"not a readable netCDF file: {exc}") from None
    with ds:
        root = _describe(ds, "/")
        sub: list[dict[str, Any]] = []
        stack = list(ds.groups.values())
        while stack and len(sub) < MAX_GROUPS:
            g = stack.pop(0)
            sub.append(_describe(g, g.path))
            stack.extend(g.groups.values())
        fmt = ds.data_model
        disk = getattr(ds, "disk_format", None)
    return {
        "format": fmt,
        "disk_format": disk,
        "dimensions": root["dimensions"],
        "variables": root["variables"],
        "n_variables": root["n_variables"],
        "global_attributes": root["attributes"],
        "groups": sub,
    }


NETCDF = Extractor(
    name=NAME,
    version=VERSION,
    func=extract_netcdf,
    extensions=frozenset({"nc", "nc3", "nc4", "cdf", "netcdf"}),
    mimes=frozenset({"application/x-netcdf", "application/netcdf"}),
    kind="binary",
    accepts=frozenset({"application/x-hdf5"}),
    preload=("netCDF4",),
)
