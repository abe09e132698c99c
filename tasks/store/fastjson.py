"""JSON for the derived stores' hot loops: orjson where it can, the standard library where it cannot.

A first search build of 1M group documents spends a third of its Python time parsing them and
encoding the chunks handed to SQLite (bench/search.py); orjson does both several times faster.
It refuses what the standard library accepts in group files (NaN, lone surrogates) and reads
integers past 64 bits as floats, so those documents go to ``json`` and read exactly as before.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

#: 19 digits in a row: maybe an integer orjson would read as a float (past 64 bits); such documents
#: (also any with a long digit string) are read by ``json``.
_LONG_DIGITS = re.compile(rb"\d{19}")
_LONG_DIGITS_STR = re.compile(r"\d{19}")


def loads(data: bytes | str) -> Any:
    """A parsed JSON document; ValueError (``json.JSONDecodeError``) when it is not JSON."""
    long_digits = _LONG_DIGITS if isinstance(data, bytes) else _LONG_DIGITS_STR
    if long_digits.search(data) is None:
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass
    return json.loads(data)


def load_file(path: str) -> Any:
    """The parsed JSON file at ``path`` (OSError, ValueError as ``json.load``)."""
    with open(path, "rb") as fh:
        return loads(fh.read())


def dumps(value: Any) -> str:
    """Compact JSON text of ``value`` (non-ASCII kept as is) for SQLite's ``json_each``."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # integers past 64 bits, lone surrogates
        return json.dumps(value, ensure_ascii=False)
