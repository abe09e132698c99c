"""JSON, JSON Lines and XML documents: structure, not content.

JSON is walked iteratively (a stack, not recursion) so any shape works: the
original crashed on lists of numbers. XML goes through defusedxml's streaming
parser, which refuses entity expansion ("billion laughs") and external entities,
and elements are cleared as they close so memory stays bounded.
"""

from __future__ import annotations

import gzip
import io
import json
from collections import Counter
from typing import IO, Any

from extractors.base import Extractor, ExtractorError

NAME = "jsonxml"
VERSION = "2.0"
MAX_KEYS = 200
#: JSON is parsed whole; past this size only the structure of JSON Lines is streamed.
MAX_JSON_BYTES = 512 * 1024 * 1024


def _open(path: str) -> IO[bytes]:
    with open(path, "rb") as fh:
        gz = fh.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if gz else open(path, "rb")


def _walk(doc: Any, keys: Counter[str], counts: Counter[str]) -> int:
    """Container nesting depth of ``doc`` (a scalar document is 0); counts elements and keys."""
    max_depth = 0
    stack: list[tuple[Any, int]] = [(doc, 1)]
    while stack:
        node, depth = stack.pop()
        counts["elements"] += 1
        if isinstance(node, dict):
            counts["objects"] += 1
            max_depth = max(max_depth, depth)
            for k, v in node.items():
                keys[k] += 1
                stack.append((v, depth + 1))
        elif isinstance(node, list):
            counts["arrays"] += 1
            max_depth = max(max_depth, depth)
            if node and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in node):
                counts["numeric_arrays"] += 1
                counts["elements"] += len(node)
                counts["numbers"] += len(node)
                continue
            stack.extend((v, depth + 1) for v in node)
        else:
            kind = "nulls" if node is None else "booleans" if isinstance(node, bool) else \
                "numbers" if isinstance(node, (int, float)) else "strings"
            counts[kind] += 1
    return max_depth


def _top_type(doc: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean"}.get(type(doc), "number" if doc is not None
                                                                               else "null")


def extract_json(path: str) -> dict[str, Any]:
    with _open(path) as fh:
        data = fh.read(MAX_JSON_BYTES + 1)
    if not data.strip():
        raise ExtractorError("empty JSON document")
    if len(data) > MAX_JSON_BYTES:
        raise ExtractorError(f"JSON document larger than {MAX_JSON_BYTES} bytes")
    keys: Counter[str] = Counter()
    counts: Counter[str] = Counter()
    try:
        doc = json.loads(data)
        fmt, top, n_records = "json", _top_type(doc), None
        depth = _walk(doc, keys, counts)
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


def _local(tag: str) -> tuple[str | None, str]:
    if tag.startswith("{"):
        ns, _, local = tag[1:].partition("}")
        return ns, local
    return None, tag


def extract_xml(path: str) -> dict[str, Any]:
    try:
        from defusedxml.ElementTree import iterparse
    except ImportError:  # never fall back to an unprotected parser
        raise ExtractorError("XML needs defusedxml (pip install prefect-xtract[science])") from None
    tags: Counter[str] = Counter()
    attrs: Counter[str] = Counter()
    namespaces: set[str] = set()
    depth = max_depth = elements = text_nodes = 0
    root: str | None = None
    with _open(path) as fh:
        for event, elem in iterparse(fh, events=("start", "end"), forbid_dtd=False, forbid_entities=True,
                                     forbid_external=True):
            if event == "start":
                depth += 1
                elements += 1
                max_depth = max(max_depth, depth)
                ns, local = _local(elem.tag)
                if root is None:
                    root = local
                if ns:
                    namespaces.add(ns)
                tags[local] += 1
                for a in elem.attrib:
                    attrs[_local(a)[1]] += 1
            else:
                depth -= 1
                if elem.text and elem.text.strip():
                    text_nodes += 1
                elem.clear()
    if root is None:
        raise ExtractorError("XML document has no root element")
    return {
        "format": "xml",
        "root": root,
        "max_depth": max_depth,
        "element_count": elements,
        "text_elements": text_nodes,
        "namespaces": sorted(namespaces)[:MAX_KEYS],
        "n_distinct_keys": len(tags),
        "keys": [k for k, _ in sorted(tags.items(), key=lambda kv: (-kv[1], kv[0]))[:MAX_KEYS]],
        "keys_truncated": len(tags) > MAX_KEYS,
        "attributes": [k for k, _ in sorted(attrs.items(), key=lambda kv: (-kv[1], kv[0]))[:MAX_KEYS]],
    }


def extract_jsonxml(path: str) -> dict[str, Any]:
    """XML when the document starts with '<', JSON otherwise (gzip-compressed or not)."""
    with _open(path) as fh:
        head = fh.read(512).lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith(b"<"):
        return extract_xml(path)
    return extract_json(path)


JSONXML = Extractor(
    name=NAME,
    version=VERSION,
    func=extract_jsonxml,
    extensions=frozenset({"json", "json.gz", "jsonl", "ndjson", "geojson", "xml", "xml.gz", "kml", "gpx", "xsd"}),
    mimes=frozenset({"application/json", "application/x-ndjson", "application/xml", "text/xml",
                     "application/geo+json"}),
    kind="text",
    accepts=frozenset({"application/gzip"}),
)
