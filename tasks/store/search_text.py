"""What the search index stores and how queries are read: metadata -> text, user query -> FTS5.

Kept apart from the index (tasks/store/search.py) because both are pure functions with
their own rules: the leaf's key precedes its value so ``name=tas`` can be a phrase
query, and user words are quoted so punctuation (``model_a.nc``) never trips FTS5.
"""

from __future__ import annotations

import re
from typing import Any

#: Budget of metadata text per file: a 10k-column table must not make one giant row.
MAX_TEXT_CHARS = 32_000
MAX_LIST_ITEMS = 100
MAX_VALUE_CHARS = 500


# -- documents -> text ----------------------------------------------------------
#: Types of a list whose items are all plain values (one piece for the list), and of a list of strings.
_SCALAR_TYPES = frozenset({str, int, float, bool, type(None)})
_STR_ONLY = frozenset({str})


def _scalar(value: Any) -> str:
    text = str(value).lower() if isinstance(value, bool) else str(value)
    return text[:MAX_VALUE_CHARS]


def flatten(value: Any, keys: dict[str, None], parts: list[str], key: str = "", budget: int = MAX_TEXT_CHARS) -> int:
    """Append "key value" pieces of ``value`` to ``parts`` and its key names to ``keys``; returns the budget left.

    The leaf's own key precedes its value so a phrase query "name tas" finds a
    variable named tas (netCDF variables are lists of {"name": ...} records).
    Exact types are tested first: parsed JSON has no subclasses, and this walk is a third of
    a first search build's Python time (tests/test_perf_paths.py holds it to the plain recursion).
    """
    if budget <= 0:
        return budget
    kind = type(value)
    if kind is dict or (kind is not list and isinstance(value, dict)):
        for k, v in value.items():
            if type(k) is not str:
                k = str(k)
            keys.setdefault(k, None)
            t = type(v)
            if t is str:  # most values: inlined, a call per leaf was most of flatten's time
                piece = f"{k} {v[:MAX_VALUE_CHARS]}" if k else v[:MAX_VALUE_CHARS]
            elif t is int or t is float:
                piece = f"{k} {str(v)[:MAX_VALUE_CHARS]}" if k else str(v)[:MAX_VALUE_CHARS]
            elif v is None:
                continue
            else:
                budget = flatten(v, keys, parts, k, budget)
                if budget <= 0:
                    break
                continue
            parts.append(piece)
            budget -= len(piece) + 1
            if budget <= 0:
                break
    elif kind is list or isinstance(value, list):
        items = value[:MAX_LIST_ITEMS]
        types = set(map(type, items))
        if types and types <= _SCALAR_TYPES:  # a list of plain values: one piece
            if types == _STR_ONLY:
                piece = " ".join([key, *[v[:MAX_VALUE_CHARS] for v in items]]).strip()
            else:
                piece = " ".join([key, *[_scalar(v) for v in items if v is not None]]).strip()
            parts.append(piece)
            budget -= len(piece) + 1
        elif items and all(not isinstance(v, dict | list) for v in items):
            piece = " ".join([key, *(_scalar(v) for v in items if v is not None)]).strip()
            parts.append(piece)
            budget -= len(piece) + 1
        else:
            for v in items:
                budget = flatten(v, keys, parts, key, budget)
                if budget <= 0:
                    break
    elif value is not None:
        piece = f"{key} {_scalar(value)}" if key else _scalar(value)
        parts.append(piece)
        budget -= len(piece) + 1
    return budget


def file_text(doc: dict[str, Any] | None, path: str, error: str | None) -> tuple[str, str]:
    """(keys, text) of one file: its own member metadata in a multi-file group, else the group's."""
    keys: dict[str, None] = {}
    parts: list[str] = []
    budget = MAX_TEXT_CHARS
    for name, slot in ((doc or {}).get("metadata") or {}).items():
        keys.setdefault(str(name), None)
        if isinstance(slot, dict) and isinstance(slot.get("members"), dict):
            budget = flatten(slot["members"].get(path), keys, parts, "", budget)
            rest = {k: v for k, v in slot.items() if k != "members"}
            budget = flatten(rest, keys, parts, "", budget)
        else:
            budget = flatten(slot, keys, parts, "", budget)
    if error:
        parts.append(f"error {error[:MAX_VALUE_CHARS]}")
    return " ".join(keys), " ; ".join(parts)


# -- query language -------------------------------------------------------------
_TOKEN = re.compile(r'[^\s="]+="[^"]*"|"[^"]*"|\S+')
_COLUMN = re.compile(r"^(path|keys|text):(.+)$")


def _quote(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def to_fts_query(query: str) -> str:
    """Translate the user's query into FTS5 syntax that cannot trip on punctuation.

    Words are matched as phrases (``foo.nc`` -> ``"foo.nc"``), ``AND``/``OR``/``NOT``
    pass through, ``word*`` is a prefix, ``key=value`` finds a value under that key
    (the last part of a dotted key), ``path:``/``keys:``/``text:`` pick a column.
    """
    out: list[str] = []
    for tok in _TOKEN.findall(query):
        if tok in ("AND", "OR", "NOT", "(", ")"):
            out.append(tok)
        elif len(tok) >= 2 and tok[0] == tok[-1] == '"':
            out.append(_quote(tok[1:-1]))
        elif (m := _COLUMN.match(tok)) is not None:
            out.append(f"{m.group(1)}:{to_fts_query(m.group(2))}")
        elif "=" in tok[1:-1]:
            key, value = tok.split("=", 1)
            out.append(f"text:{_quote(key.rsplit('.', 1)[-1] + ' ' + value.strip(chr(34)))}")
        elif tok.endswith("*") and len(tok) > 1:
            out.append(_quote(tok[:-1]) + "*")
        else:
            out.append(_quote(tok))
    return " ".join(out)
