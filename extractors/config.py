"""Configuration files (INI/CFG, TOML, YAML, key=value properties, matplotlib styles): their structure.

Sections and keys are what a repository's configuration is searched by (which
files set ``[tool.pytest]``, which style sets ``axes.grid``). Values are kept only
as short scalars. Parsers never execute or expand anything: configparser without
interpolation, ``tomllib``, and YAML composed to a node graph with the safe loader
(tags are not constructed, and an alias is walked once, so an alias bomb costs what
its text costs). Files are read up to ``MAX_BYTES``.
"""

from __future__ import annotations

import configparser
import re
from typing import Any

from extractors.base import Extractor, ExtractorError, NotMyFormat

NAME = "config"
VERSION = "1.0"
MAX_BYTES = 8 * 1024 * 1024
MAX_KEYS = 200
MAX_VALUE = 200
_INI_SECTION = re.compile(r"^\s*\[[^\]\[]+\]\s*$", re.M)
_KEY_VALUE = re.compile(r"^\s*[\w.\-/ ]+?\s*[=:]\s*\S?.*$")


def _read(path: str) -> str:
    with open(path, "rb") as fh:
        raw = fh.read(MAX_BYTES + 1)
    if b"\x00" in raw[:8192]:
        raise NotMyFormat("binary content: not a configuration file")
    if len(raw) > MAX_BYTES:
        raise ExtractorError(f"configuration file larger than {MAX_BYTES} bytes")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _scalar(v: Any) -> Any:
    if isinstance(v, str):
        return v[:MAX_VALUE]
    if isinstance(v, (int, float, bool)) or v is None:
        return v
    return str(v)[:MAX_VALUE]


def sniff_ini(head: bytes) -> bool:
    """Text whose first meaningful line is ``[section]`` followed by key = value lines."""
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    lines = [ln for ln in text.splitlines()[:40] if ln.strip() and not ln.lstrip().startswith(("#", ";"))]
    return bool(lines) and bool(_INI_SECTION.match(lines[0])) and any(_KEY_VALUE.match(ln) for ln in lines[1:])


def _ini(text: str) -> dict[str, Any]:
    parser = configparser.RawConfigParser(strict=False, interpolation=None, allow_no_value=True)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    try:
        parser.read_string(text)
    except configparser.MissingSectionHeaderError:
        return _properties(text)
    except configparser.Error as exc:
        raise NotMyFormat(f"not INI: {type(exc).__name__}") from None
    sections = {}
    n_keys = 0
    for name in parser.sections()[:MAX_KEYS]:
        items = parser.items(name, raw=True)
        n_keys += len(items)
        sections[name] = {k: _scalar(v) for k, v in items[:MAX_KEYS]}
    if not sections and not parser.defaults():
        raise NotMyFormat("no sections and no keys")
    out: dict[str, Any] = {"format": "ini", "n_sections": len(parser.sections()), "n_keys": n_keys,
                           "sections": sections}
    if parser.defaults():
        out["defaults"] = {k: _scalar(v) for k, v in list(parser.defaults().items())[:MAX_KEYS]}
    return out


def _properties(text: str) -> dict[str, Any]:
    """``key = value`` / ``key: value`` lines without sections (.properties, matplotlib styles)."""
    keys: dict[str, Any] = {}
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith(("#", ";", "!"))]
    good = 0
    for ln in lines:
        m = re.match(r"^\s*([^=:\s][^=:]*?)\s*[=:]\s*(.*?)\s*(?:#.*)?$", ln)
        if m:
            good += 1
            if len(keys) < MAX_KEYS:
                keys[m.group(1)] = m.group(2)[:MAX_VALUE]
    if not lines or good < 0.8 * len(lines):
        raise NotMyFormat("not key = value lines")
    return {"format": "properties", "n_keys": good, "keys": keys}


def _toml(text: str) -> dict[str, Any]:
    import tomllib

    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ExtractorError(f"invalid TOML: {exc}") from None
    tables: list[str] = []
    stack: list[tuple[str, Any]] = [("", doc)]
    n_keys = 0
    while stack:
        prefix, node = stack.pop()
        for k, v in node.items():
            n_keys += 1
            key = f"{prefix}.{k}" if prefix else k
            if isinstance(v, dict):
                if len(tables) < MAX_KEYS:
                    tables.append(key)
                if key.count(".") < 4:
                    stack.append((key, v))
    out: dict[str, Any] = {"format": "toml", "top_level_keys": list(doc)[:MAX_KEYS], "tables": sorted(tables),
                           "n_keys": n_keys}
    project = doc.get("project") or doc.get("tool", {}).get("poetry")
    if isinstance(project, dict):
        out["project"] = {k: _scalar(project[k]) for k in ("name", "version", "description", "requires-python")
                          if k in project}
    return out


def _yaml(text: str) -> dict[str, Any]:
    try:
        import yaml
    except ImportError:
        raise ExtractorError("YAML needs PyYAML: install the science extra (pip install 'prefect-xtract[science]')"
                             ) from None
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        docs = list(yaml.compose_all(text, Loader=loader))
    except yaml.YAMLError as exc:
        if "{%" in text or "{{" in text:  # a Jinja/Helm/conda template, not damaged YAML: let free text take it
            raise NotMyFormat(f"a template, not YAML: {str(exc)[:200]}") from None
        raise ExtractorError(f"invalid YAML: {str(exc)[:300]}") from None
    docs = [d for d in docs if d is not None]
    if not docs:
        raise ExtractorError("empty YAML document")
    keys: dict[str, int] = {}
    seen: set[int] = set()
    max_depth = nodes = 0
    stack = [(d, 1) for d in docs]
    while stack and nodes < 1_000_000:
        node, depth = stack.pop()
        if id(node) in seen:
            continue  # an alias: walked once
        seen.add(id(node))
        nodes += 1
        max_depth = max(max_depth, depth)
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                if isinstance(k, yaml.ScalarNode) and len(keys) < 10 * MAX_KEYS:
                    keys[k.value[:MAX_VALUE]] = keys.get(k.value[:MAX_VALUE], 0) + 1
                stack.append((v, depth + 1))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((v, depth + 1) for v in node.value)
    first = docs[0]
    top: Any
    if isinstance(first, yaml.MappingNode):
        top = {k.value[:MAX_VALUE]: (v.value[:MAX_VALUE] if isinstance(v, yaml.ScalarNode) else
                                     type(v).__name__.replace("Node", "").lower())
               for k, v in first.value[:MAX_KEYS] if isinstance(k, yaml.ScalarNode)}
    else:
        top = type(first).__name__.replace("Node", "").lower()
    return {"format": "yaml", "documents": len(docs), "top_level": top, "max_depth": max_depth, "nodes": nodes,
            "n_distinct_keys": len(keys),
            "keys": [k for k, _ in sorted(keys.items(), key=lambda kv: (-kv[1], kv[0]))[:MAX_KEYS]]}


def _asdf(path: str) -> dict[str, Any]:
    """ASDF: a YAML tree (up to the ``...`` end marker), then binary blocks that are not read."""
    with open(path, "rb") as fh:
        raw = fh.read(MAX_BYTES)
    if not raw.startswith(b"#ASDF"):
        raise NotMyFormat("no #ASDF header")
    end = raw.find(b"\n...")
    tree = raw[: end + 1] if end >= 0 else raw.split(b"\xd3BLK", 1)[0]
    lines = tree.split(b"\n", 3)
    out: dict[str, Any] = {"format": "asdf", "asdf_version": lines[0][6:].decode("latin-1").strip()}
    if len(lines) > 1 and lines[1].startswith(b"#ASDF_STANDARD"):
        out["asdf_standard"] = lines[1][15:].decode("latin-1").strip()
    out["blocks"] = raw.count(b"\xd3BLK")
    if end < 0 and b"\xd3BLK" not in raw and len(raw) >= MAX_BYTES:
        out["tree_truncated"] = True
    yaml_doc = _yaml(tree.decode("utf-8", errors="replace"))
    yaml_doc.pop("format", None)
    return {**out, **yaml_doc}


def extract_config(path: str) -> dict[str, Any]:
    if path.lower().endswith(".asdf"):
        return _asdf(path)
    text = _read(path)
    if not text.strip():
        raise ExtractorError("empty configuration file")
    lower = path.lower()
    if lower.endswith(".toml"):
        return _toml(text)
    if lower.endswith((".yaml", ".yml")):
        return _yaml(text)
    if lower.endswith((".mplstyle", ".properties", ".env")):
        return _properties(text)
    return _ini(text)


CONFIG = Extractor(
    name=NAME,
    version=VERSION,
    func=extract_config,
    extensions=frozenset({"ini", "cfg", "conf", "toml", "yaml", "yml", "mplstyle", "properties", "cnf", "asdf"}),
    mimes=frozenset({"text/x-ini", "application/toml", "application/yaml", "text/yaml", "application/x-yaml"}),
    kind="any",
    sniff=sniff_ini,
    preload=("yaml",),
)
