"""File names as text: how paths that are not valid UTF-8 cross Parquet, SQLite and JSON.

POSIX file names are bytes. Python hands undecodable bytes to us as lone
surrogates (``surrogateescape``), which pyarrow, sqlite3 and a UTF-8 JSON file all
refuse. So every path leaving the filesystem layer goes through ``to_text``: valid
UTF-8 names are kept exactly, and each undecodable byte becomes the four
characters ``\\xNN`` (Python's ``backslashreplace``, what ``ls -b`` shows). The
worker turns that text back into the real name with ``to_fs`` before it opens the
file. The one ambiguity (a valid name that literally contains ``\\xff`` next to a
sibling whose name has the raw byte 0xff) resolves to the file that exists on
disk; such pairs are indistinguishable in the index, and docs/reliability.md says so.
"""

from __future__ import annotations

import os
import re
from typing import Any

_ESCAPED = re.compile(rb"\\x([89a-f][0-9a-f])")


def to_text(path: str) -> str:
    """``path`` as valid UTF-8 text; unchanged unless it holds undecodable bytes."""
    if path.isascii():
        return path
    try:
        path.encode("utf-8")
        return path
    except UnicodeEncodeError:
        pass
    try:
        return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # surrogates that did not come from bytes (e.g. "\ud800" in parsed JSON)
        return path.encode("utf-8", "backslashreplace").decode("utf-8")


def to_fs(text: str) -> str:
    """The name ``to_text`` made ``text`` from, as Python's filesystem API expects it."""
    if "\\x" not in text:
        return text
    raw = _ESCAPED.sub(lambda m: bytes([int(m.group(1), 16)]), text.encode("utf-8"))
    candidate = os.fsdecode(raw)
    if candidate == text or os.path.lexists(candidate) or not os.path.lexists(text):
        return candidate
    return text


def clean_strings(value: Any) -> Any:
    """A JSON-ready value with every string (keys too) made valid UTF-8 by ``to_text``."""
    if isinstance(value, str):
        return to_text(value)
    if isinstance(value, dict):
        return {to_text(str(k)): clean_strings(v) for k, v in value.items()}
    if isinstance(value, list):
        return [clean_strings(v) for v in value]
    return value
