"""JSON for the derived stores' hot loops: orjson where it can, the standard library where it cannot.

A first search build of 1M group documents spends a third of its Python time parsing them and
encoding the chunks handed to SQLite (bench/search.py); orjson does both several times faster.
It refuses what the standard library accepts in group files (NaN, lone surrogates) and reads
integers past 64 bits as floats, so those documents go to ``json`` and read exactly as before.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

#: 19 digits in a row: maybe an integer orjson would read as a float (past 64 bits); such documents
#: (also any with a long digit string) are read by ``json``. Found by mapping every digit to "0" and
#: anything else to " " (``bytes.translate``, ~15x faster than a regular expression here).
_DIGITS_AS_ZEROS = bytes(0x30 if 0x30 <= b <= 0x39 else 0x20 for b in range(256))
_LONG_RUN = b"0" * 19


def loads(data: bytes | str) -> Any:
    """A parsed JSON document; ValueError (``json.JSONDecodeError``) when it is not JSON."""
    if isinstance(data, str):
        try:
            data = data.encode()
        except UnicodeEncodeError:  # lone surrogates: only ``json`` reads them
            return json.loads(data)
    if _LONG_RUN not in data.translate(_DIGITS_AS_ZEROS):
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
