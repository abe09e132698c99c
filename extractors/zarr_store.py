"""Zarr v2/v3 stores (directories): arrays, groups, shapes, chunks, dtypes, codecs, attributes.

A Zarr store is a directory tree, not a file: metadata lives in small JSON files
(v2: ``.zgroup``, ``.zarray``, ``.zattrs``, consolidated ``.zmetadata``; v3:
``zarr.json``) beside chunk files named by their grid index. The grouper makes a
store ONE group (``zarr_store_root`` tells which store a path belongs to); the
root's metadata file then describes the whole store, read from the consolidated
metadata when present and otherwise by visiting metadata files only (directories
are listed, chunk files never opened; listing stops at ``MAX_ENTRIES`` per
directory). Every other member gets a cheap record naming its store, array and
chunk key. No zarr library needed.
"""

from __future__ import annotations

import json
import os
import re
from functools import lru_cache
from typing import Any

from extractors.base import Extractor, ExtractorError

NAME = "zarr"
VERSION = "1.0"
V2_FILES = (".zgroup", ".zarray", ".zattrs", ".zmetadata")
V3_FILE = "zarr.json"
METADATA_NAMES = frozenset(V2_FILES + (V3_FILE,))
MAX_NODES = 2_000
MAX_ENTRIES = 10_000
MAX_JSON = 16 * 1024 * 1024
MAX_ATTRS = 100
_CHUNK_KEY = re.compile(r"^\d+([./]\d+)*$")


@lru_cache(maxsize=65_536)
def _is_node(directory: str) -> bool:
    """Whether a directory holds Zarr metadata (a group or an array)."""
    return any(os.path.isfile(os.path.join(directory, n)) for n in (".zgroup", ".zarray", V3_FILE))


def zarr_store_root(path: str) -> str | None:
    """The root directory of the Zarr store that ``path`` (a file or directory) lies in, or None.

    The root is the top-most directory of an unbroken chain of Zarr nodes above the
    path; a v3 chunk under ``array/c/0/1`` climbs through the ``c`` directories.
    Directory checks are cached, so calling this for every file of a crawl costs a
    few ``stat`` calls per directory, not per file.
    """
    d = path if os.path.isdir(path) else os.path.dirname(path)
    root = None
    for _ in range(64):
        if _is_node(d):
            root = d
        elif root is not None:
            break  # the first directory above the store that is not a node
        elif not _is_chunk_dir(d):
            return None  # below any node only chunk directories (v3 "c", nested indices) may lie
        parent = os.path.dirname(d)
        if parent == d:
            break
        d = parent
    return root


def _is_chunk_dir(d: str) -> bool:
    """A v3 ``c`` directory or a nested chunk-index directory (``dimension_separator`` "/")."""
    name = os.path.basename(d)
    return name == "c" or name.isdigit()


def zarr_group_key(path: str) -> str | None:
    """The grouper's hook: the store root when ``path`` is a file of a Zarr store, else None.

    A name test first (a metadata file name or a chunk key such as ``0.1.2``), so the
    other files of a crawl cost no I/O at all; then ``zarr_store_root`` (cached per
    directory). Every file of one store returns the same root: group on it.
    """
    base = os.path.basename(path)
    if base in METADATA_NAMES or _CHUNK_KEY.match(base):
        return zarr_store_root(path)
    return None


def is_zarr_member(path: str) -> bool:
    """Cheap name test first (metadata file or chunk-key name), then the store check."""
    base = os.path.basename(path)
    if base in METADATA_NAMES:
        return zarr_store_root(path) is not None
    if _CHUNK_KEY.match(base):
        return zarr_store_root(path) is not None
    return False


def _load(path: str) -> Any:
    with open(path, "rb") as fh:
        raw = fh.read(MAX_JSON + 1)
    if len(raw) > MAX_JSON:
        raise ExtractorError(f"{os.path.basename(path)} larger than {MAX_JSON} bytes")
    return json.loads(raw)


def _attrs(a: Any) -> Any:
    if not isinstance(a, dict):
        return None
    out = {}
    for k, v in list(a.items())[:MAX_ATTRS]:
        text = json.dumps(v, default=str)
        out[str(k)[:100]] = v if len(text) <= 500 else f"<{type(v).__name__}, {len(text)} chars>"
    return out


def _v2_array(meta: dict[str, Any], attrs: Any) -> dict[str, Any]:
    out = {k: meta.get(k) for k in ("shape", "chunks", "dtype", "fill_value", "order", "compressor", "filters",
                                    "dimension_separator") if k in meta}
    a = _attrs(attrs) or {}
    if "_ARRAY_DIMENSIONS" in a:
        out["dimensions"] = a.pop("_ARRAY_DIMENSIONS")
    out["attributes"] = a
    return out


def _v3_node(meta: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"node_type": meta.get("node_type")}
    if meta.get("node_type") == "array":
        grid = (meta.get("chunk_grid") or {}).get("configuration", {})
        out.update(shape=meta.get("shape"), chunks=grid.get("chunk_shape"), dtype=meta.get("data_type"),
                   fill_value=meta.get("fill_value"), codecs=[c.get("name") for c in meta.get("codecs", [])
                                                              if isinstance(c, dict)],
                   dimensions=meta.get("dimension_names"))
    out["attributes"] = _attrs(meta.get("attributes")) or {}
    return out


def describe_store(root: str) -> dict[str, Any]:
    """Arrays and groups of the store at ``root`` from metadata files only."""
    arrays: list[dict[str, Any]] = []
    groups: list[dict[str, Any]] = []
    out: dict[str, Any] = {"format": "zarr", "root": root}
    v3 = os.path.isfile(os.path.join(root, V3_FILE))
    out["zarr_format"] = 3 if v3 else 2
    if not v3 and os.path.isfile(os.path.join(root, ".zmetadata")):
        meta = _load(os.path.join(root, ".zmetadata")).get("metadata", {})
        out["consolidated"] = True
        for key, doc in meta.items():
            node, _, kind = key.rpartition("/")
            p = "/" + node
            if kind == ".zarray" and len(arrays) < MAX_NODES:
                arrays.append({"path": p, **_v2_array(doc, meta.get(f"{node}/.zattrs" if node else ".zattrs"))})
            elif kind == ".zgroup" and len(groups) < MAX_NODES:
                groups.append({"path": p if node else "/", "attributes": _attrs(
                    meta.get(f"{node}/.zattrs" if node else ".zattrs")) or {}})
    else:
        out["consolidated"] = False
        stack = [root]
        while stack and len(arrays) + len(groups) < MAX_NODES:
            d = stack.pop()
            rel = "/" + os.path.relpath(d, root).replace(os.sep, "/").lstrip("./") if d != root else "/"
            try:
                if v3:
                    node = _v3_node(_load(os.path.join(d, V3_FILE)))
                    is_array = node["node_type"] == "array"
                    (arrays if is_array else groups).append({"path": rel, **node})
                elif os.path.isfile(os.path.join(d, ".zarray")):
                    attrs = _load(os.path.join(d, ".zattrs")) if os.path.isfile(os.path.join(d, ".zattrs")) else None
                    arrays.append({"path": rel, **_v2_array(_load(os.path.join(d, ".zarray")), attrs)})
                    is_array = True
                else:
                    attrs = _load(os.path.join(d, ".zattrs")) if os.path.isfile(os.path.join(d, ".zattrs")) else None
                    groups.append({"path": rel, "attributes": _attrs(attrs) or {}})
                    is_array = False
            except (OSError, ValueError) as exc:
                groups.append({"path": rel, "error": f"{type(exc).__name__}: {str(exc)[:200]}"})
                continue
            if is_array:
                continue  # its subdirectories hold chunks
            with os.scandir(d) as it:
                for i, e in enumerate(it):
                    if i >= MAX_ENTRIES:
                        out["listing_truncated"] = True
                        break
                    if e.is_dir(follow_symlinks=False) and _is_node(e.path):
                        stack.append(e.path)
    root_attrs = next((g.get("attributes") for g in groups if g["path"] == "/"), None)
    out.update(n_arrays=len(arrays), n_groups=len(groups), arrays=sorted(arrays, key=lambda a: a["path"]),
               groups=sorted(groups, key=lambda g: g["path"]))
    if root_attrs:
        out["attributes"] = root_attrs
    return out


def extract_zarr(path: str) -> dict[str, Any]:
    """The whole store for its root metadata file; a short record naming store, array and chunk otherwise."""
    root = zarr_store_root(path)
    if root is None:
        # a lone .zarray / zarr.json copied out of its store: describe that node
        base = os.path.basename(path)
        if base == V3_FILE:
            return {"format": "zarr", "zarr_format": 3, "detached": True, **_v3_node(_load(path))}
        if base in V2_FILES:
            return {"format": "zarr", "zarr_format": 2, "detached": True, "node": base, "metadata": _attrs(
                _load(path))}
        raise ExtractorError("not inside a Zarr store")
    base = os.path.basename(path)
    parent = os.path.dirname(path)
    if parent == root and base in (".zgroup", ".zmetadata", V3_FILE) or (parent == root and base == ".zarray"):
        if base == ".zmetadata" or base == V3_FILE or not os.path.isfile(os.path.join(root, ".zmetadata")):
            return describe_store(root)
    rel = os.path.relpath(path, root).replace(os.sep, "/")
    if base in METADATA_NAMES:
        return {"format": "zarr-member", "store": root, "role": "metadata", "node": "/" + os.path.dirname(rel)}
    parts = rel.split("/")
    if "c" in parts:  # v3: array/c/0/1
        i = len(parts) - 1 - parts[::-1].index("c")
        return {"format": "zarr-member", "store": root, "role": "chunk", "array": "/" + "/".join(parts[:i]),
                "chunk_key": ".".join(parts[i + 1 :])}
    return {"format": "zarr-member", "store": root, "role": "chunk", "array": "/" + os.path.dirname(rel),
            "chunk_key": base}


ZARR = Extractor(
    name=NAME,
    version=VERSION,
    func=extract_zarr,
    extensions=frozenset({"zarray", "zgroup", "zattrs", "zmetadata"}),
    mimes=frozenset({"application/x-zarr"}),
    kind="any",
)
