"""JSON, JSON Lines and XML documents: structure, not content.

JSON is walked iteratively (a stack, not recursion) so any shape works: the
original crashed on lists of numbers. XML goes through defusedxml's SAX
parser, which refuses entity declarations ("billion laughs") and external entities;
no tree is built, so memory stays bounded.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import pyexpat
from collections import Counter
from typing import IO, Any

from extractors.base import Extractor, ExtractorError, NotMyFormat

NAME = "jsonxml"
VERSION = "2.2"
MAX_KEYS = 200
#: JSON is parsed whole; past this size only the structure of JSON Lines is streamed.
MAX_JSON_BYTES = 512 * 1024 * 1024
#: A gzip member inflating past this ratio (and past GZIP_FLOOR_BYTES) is reported as a bomb, not read.
MAX_GZIP_RATIO = 100
GZIP_FLOOR_BYTES = 64 * 1024 * 1024


def _open(path: str) -> IO[bytes]:
    with open(path, "rb") as fh:
        gz = fh.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if gz else open(path, "rb")


_SCALAR_KIND = {str: "strings", int: "numbers", float: "numbers", bool: "booleans", type(None): "nulls"}
_NUMBER_TYPES = {int, float}


def _walk(doc: Any, keys: Counter[str], counts: Counter[str]) -> int:
    """Container nesting depth of ``doc`` (a scalar document is 0); counts elements and keys.

    Iterative, with local counters and exact type checks: this loop is the cost of a
    large JSON document (json.loads itself is C).
    """
    max_depth = objects = arrays = numeric_arrays = numbers_in_arrays = 0
    scalars: Counter[str] = Counter()
    stack: list[tuple[Any, int]] = [(doc, 1)]
    pop, push, extend = stack.pop, stack.append, stack.extend
    while stack:
        node, depth = pop()
        kind = type(node)
        if kind is dict:
            objects += 1
            if depth > max_depth:
                max_depth = depth
            keys.update(node.keys())  # (a dict itself would be taken as counts)
            for v in node.values():
                push((v, depth + 1))
        elif kind is list:
            arrays += 1
            if depth > max_depth:
                max_depth = depth
            if node and all(type(v) in _NUMBER_TYPES for v in node):
                numeric_arrays += 1
                numbers_in_arrays += len(node)
                continue
            extend([(v, depth + 1) for v in node])
        else:
            scalars[_SCALAR_KIND.get(kind, "strings")] += 1
    counts["objects"] += objects
    counts["arrays"] += arrays
    counts["numeric_arrays"] += numeric_arrays
    counts.update(scalars)
    counts["numbers"] += numbers_in_arrays
    counts["elements"] += objects + arrays + sum(scalars.values()) + numbers_in_arrays
    return max_depth


def _top_type(doc: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean"}.get(type(doc), "number" if doc is not None
                                                                               else "null")


def _read_limit(path: str, fh: IO[bytes]) -> int:
    """How many bytes may be read: the JSON cap, tighter for gzip so a bomb is refused, not inflated."""
    if isinstance(fh, gzip.GzipFile):
        return min(MAX_JSON_BYTES, max(GZIP_FLOOR_BYTES, MAX_GZIP_RATIO * os.path.getsize(path)))
    return MAX_JSON_BYTES


def extract_json(path: str) -> dict[str, Any]:
    with _open(path) as fh:
        limit = _read_limit(path, fh)
        data = fh.read(limit + 1)
    if not data.strip():
        raise ExtractorError("empty JSON document")
    if len(data) > limit:
        if limit < MAX_JSON_BYTES:
            raise ExtractorError(f"gzip member inflates past {limit} bytes ({MAX_GZIP_RATIO}x its size): "
                                 "refused as a possible decompression bomb")
        raise ExtractorError(f"JSON document larger than {MAX_JSON_BYTES} bytes")
    keys: Counter[str] = Counter()
    counts: Counter[str] = Counter()
    profile: dict[str, Any] = {}
    try:
        doc = json.loads(data)
        fmt, top, n_records = "json", _top_type(doc), None
        depth = _walk(doc, keys, counts)
        profile = _json_profile(doc)
    except json.JSONDecodeError as exc:
        if exc.msg != "Extra data":
            raise
        # JSON Lines: one document per line
        depth, n_records, types = 0, 0, Counter()
        for line in io.BytesIO(data):
            if line.strip():
                rec = json.loads(line)
                n_records += 1
                types[_top_type(rec)] += 1
                depth = max(depth, _walk(rec, keys, counts))
        fmt, top = "jsonl", types.most_common(1)[0][0]
    return {
        **profile,
        "format": fmt,
        "top_level_type": top,
        "records": n_records,
        "max_depth": depth,
        "element_count": counts["elements"],
        "counts": {k: counts[k] for k in ("objects", "arrays", "strings", "numbers", "booleans", "nulls",
                                          "numeric_arrays")},
        "n_distinct_keys": len(keys),
        "keys": [k for k, _ in sorted(keys.items(), key=lambda kv: (-kv[1], kv[0]))[:MAX_KEYS]],
        "keys_truncated": len(keys) > MAX_KEYS,
    }


def _json_profile(doc: Any) -> dict[str, Any]:
    """What a well-known JSON vocabulary says about itself: Jupyter notebooks and GeoJSON."""
    if not isinstance(doc, dict):
        return {}
    if isinstance(doc.get("cells"), list) and "nbformat" in doc:
        meta = doc.get("metadata") if isinstance(doc.get("metadata"), dict) else {}
        kernel = meta.get("kernelspec") if isinstance(meta.get("kernelspec"), dict) else {}
        lang = meta.get("language_info") if isinstance(meta.get("language_info"), dict) else {}
        cells: Counter[str] = Counter()
        headings: list[str] = []
        for cell in doc["cells"]:
            if not isinstance(cell, dict):
                continue
            cells[str(cell.get("cell_type"))] += 1
            if cell.get("cell_type") == "markdown" and len(headings) < 30:
                src = cell.get("source")
                text = "".join(src) if isinstance(src, list) else str(src or "")
                headings += [ln.lstrip("#").strip()[:200] for ln in text.splitlines() if ln.startswith("#")][:5]
        return {"notebook": {"nbformat": f"{doc.get('nbformat')}.{doc.get('nbformat_minor')}",
                             "kernel": kernel.get("name"), "language": lang.get("name") or kernel.get("language"),
                             "language_version": lang.get("version"), "cells": dict(cells),
                             "headings": headings[:30]}}
    if doc.get("type") == "FeatureCollection" and isinstance(doc.get("features"), list):
        geoms: Counter[str] = Counter()
        props: Counter[str] = Counter()
        for feat in doc["features"]:
            if isinstance(feat, dict):
                g = feat.get("geometry")
                geoms[str(g.get("type")) if isinstance(g, dict) else "null"] += 1
                if isinstance(feat.get("properties"), dict):
                    props.update(feat["properties"].keys())
        out: dict[str, Any] = {"n_features": len(doc["features"]), "geometry_types": dict(geoms),
                               "property_keys": [k for k, _ in props.most_common(MAX_KEYS)]}
        if isinstance(doc.get("bbox"), list):
            out["bbox"] = doc["bbox"][:6]
        if isinstance(doc.get("crs"), dict):
            out["crs"] = json.dumps(doc["crs"])[:200]
        return {"geojson": out}
    return {}


def extract_xml(path: str) -> dict[str, Any]:
    """Structure of an XML document, streamed through defusedxml's expat reader.

    defusedxml installs its guards (entity declarations and external entity
    references raise) on the expat parser when parsing starts; our element handlers
    then go straight onto that parser instead of through the SAX layer, which
    measured 2.5x faster. No tree is built, so memory stays bounded.
    """
    try:
        from xml.sax.handler import feature_namespaces

        from defusedxml.sax import make_parser
    except ImportError:  # never fall back to an unprotected parser
        raise ExtractorError("XML needs defusedxml (pip install prefect-xtract[science])") from None
    tags: Counter[str] = Counter()
    attrs: Counter[str] = Counter()
    namespaces: set[str] = set()
    state = {"depth": 0, "max_depth": 0, "elements": 0, "text_elements": 0, "root": None}
    text_flags: list[bool] = []

    doctype: dict[str, Any] = {}
    profile = _Profile()

    def start(name: str, attributes: dict[str, str]) -> None:
        parts = name.split(" ")  # "local", "uri local" or "uri local prefix"
        ns, local = (parts[0], parts[1]) if len(parts) > 1 else ("", parts[0])
        state["depth"] += 1
        state["elements"] += 1
        if state["depth"] > state["max_depth"]:
            state["max_depth"] = state["depth"]
        if state["root"] is None:
            state["root"] = local
            profile.begin(local, attributes)
        elif profile.kind:
            profile.element(local, attributes)
        if ns:
            namespaces.add(ns)
        tags[local] += 1
        for attr in attributes:
            bits = attr.split(" ")
            attrs[bits[1] if len(bits) > 1 else bits[0]] += 1
        text_flags.append(False)

    def end(name: str) -> None:
        state["depth"] -= 1
        if text_flags.pop():
            state["text_elements"] += 1

    def characters(data: str) -> None:
        if text_flags and not text_flags[-1] and not data.isspace():
            text_flags[-1] = True
        if profile.want_text:
            profile.text(data)

    def start_doctype(name: str, system_id: str | None, public_id: str | None, internal: int) -> None:
        doctype.update(name=name, system_id=system_id, public_id=public_id, internal_subset=bool(internal))

    def external_ref(context: str | None, base: str | None, system_id: str | None, public_id: str | None) -> int:
        # the external DTD subset: recorded, never fetched (1 = handled, parsing goes on)
        doctype.setdefault("external_dtd_skipped", True)
        return 1

    reader = make_parser()  # a DefusedExpatParser
    reader.setFeature(feature_namespaces, True)
    reader.feed(b"")  # creates the expat parser and installs defusedxml's guards on it
    expat = reader._parser  # type: ignore[attr-defined]
    expat.StartElementHandler, expat.EndElementHandler, expat.CharacterDataHandler = start, end, characters
    # Entity declarations stay forbidden (defusedxml's handlers); the external DTD is never
    # read: parameter entities are not parsed and the only external reference left, the
    # DTD subset, is answered "handled" without opening anything.
    expat.SetParamEntityParsing(pyexpat.XML_PARAM_ENTITY_PARSING_NEVER)
    expat.StartDoctypeDeclHandler = start_doctype
    expat.ExternalEntityRefHandler = external_ref
    with _open(path) as fh:
        while block := fh.read(1 << 20):
            reader.feed(block)
    reader.close()
    if state["root"] is None:
        raise ExtractorError("XML document has no root element")
    extra: dict[str, Any] = {}
    if doctype:
        extra["doctype"] = doctype
    if profile.kind:
        extra[profile.kind] = profile.result()
    return {**extra,
        "format": "xml",
        "root": state["root"],
        "max_depth": state["max_depth"],
        "element_count": state["elements"],
        "text_elements": state["text_elements"],
        "namespaces": sorted(namespaces)[:MAX_KEYS],
        "n_distinct_keys": len(tags),
        "keys": _ranked(tags),
        "keys_truncated": len(tags) > MAX_KEYS,
        "attributes": _ranked(attrs),
    }


class _Profile:
    """What a scientist searches for in well-known XML vocabularies (SVG, VOTable, GIFTI)."""

    MAX_ITEMS = 500

    def __init__(self) -> None:
        self.kind: str | None = None
        self.want_text = False
        self.data: dict[str, Any] = {}
        self._title: list[str] = []

    def begin(self, root: str, attrs: dict[str, str]) -> None:
        plain = {k.split(" ")[-1]: v[:200] for k, v in attrs.items()}
        if root == "svg":
            self.kind = "svg"
            self.data = {k: plain[k] for k in ("width", "height", "viewBox", "version") if k in plain}
        elif root == "VOTABLE":
            self.kind = "votable"
            self.data = {"version": plain.get("version"), "resources": 0, "tables": [], "fields": [], "infos": {}}
        elif root == "GIFTI":
            self.kind = "gifti"
            self.data = {"version": plain.get("Version"), "n_data_arrays": plain.get("NumberOfDataArrays"),
                         "data_arrays": []}

    def element(self, local: str, attrs: dict[str, str]) -> None:
        plain = {k.split(" ")[-1]: v[:200] for k, v in attrs.items()}
        d = self.data
        if self.kind == "svg":
            if local == "title" and "title" not in d:
                self.want_text = True
            elif self.want_text:
                self._finish_title()
        elif self.kind == "votable":
            if local == "RESOURCE":
                d["resources"] += 1
            elif local == "TABLE" and len(d["tables"]) < self.MAX_ITEMS:
                d["tables"].append({k: plain[k] for k in ("name", "ID", "nrows") if k in plain})
            elif local in ("FIELD", "PARAM") and len(d["fields"]) < self.MAX_ITEMS:
                d["fields"].append({"element": local, **{k: plain[k] for k in ("name", "datatype", "unit", "ucd",
                                                                              "arraysize", "value") if k in plain}})
            elif local == "INFO" and "name" in plain and len(d["infos"]) < 50:
                d["infos"][plain["name"]] = plain.get("value")
        elif self.kind == "gifti" and local == "DataArray" and len(d["data_arrays"]) < self.MAX_ITEMS:
            d["data_arrays"].append({k: plain[k] for k in ("Intent", "DataType", "Dimensionality", "Dim0", "Dim1",
                                                           "Encoding", "ArrayIndexingOrder") if k in plain})

    def text(self, data: str) -> None:
        self._title.append(data)
        if sum(map(len, self._title)) > 500:
            self._finish_title()

    def _finish_title(self) -> None:
        self.data["title"] = "".join(self._title).strip()[:500]
        self.want_text = False

    def result(self) -> dict[str, Any]:
        if self.want_text:
            self._finish_title()
        return self.data


def _ranked(counts: Counter[str]) -> list[str]:
    return [k for k, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:MAX_KEYS]]


def extract_jsonxml(path: str) -> dict[str, Any]:
    """XML when the document starts with '<', JSON otherwise (gzip-compressed or not)."""
    with _open(path) as fh:
        head = fh.read(512).lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith(b"<"):
        return extract_xml(path)
    if head and not head.startswith((b"{", b"[", b'"')) and not head[:1].isdigit() and not head.startswith(
            (b"true", b"false", b"null", b"-")):
        raise NotMyFormat("neither JSON nor XML: the document starts with neither '<', '{' nor '['")
    try:
        return extract_json(path)
    except json.JSONDecodeError as exc:
        if exc.pos <= 2:  # "{%" of a template, "[section]" of an INI file: another format
            raise NotMyFormat(f"not JSON: {exc}") from None
        raise


JSONXML = Extractor(
    name=NAME,
    version=VERSION,
    func=extract_jsonxml,
    extensions=frozenset({"json", "json.gz", "jsonl", "ndjson", "geojson", "xml", "xml.gz", "kml", "gpx", "xsd",
                          "ipynb", "topojson", "vot", "votable", "gml", "xsl", "xslt", "wadl", "qml", "sc3ml"}),
    mimes=frozenset({"application/json", "application/x-ndjson", "application/xml", "text/xml",
                     "application/geo+json"}),
    kind="text",
    accepts=frozenset({"application/gzip"}),
    preload=("defusedxml.sax",),
)
