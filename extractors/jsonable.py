"""Make extractor output strict JSON: no NaN, no numpy scalars, no bytes."""

from __future__ import annotations

import math
from typing import Any


def to_jsonable(value: Any, _depth: int = 0) -> Any:
    if _depth > 64:
        return "<nested too deep>"
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): to_jsonable(v, _depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v, _depth + 1) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted((to_jsonable(v, _depth + 1) for v in value), key=str)
    if isinstance(value, (bytes, bytearray)):
        return bytes(value[:256]).decode("utf-8", errors="replace")
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item):
        try:
            return to_jsonable(item(), _depth + 1)
        except (TypeError, ValueError):
            pass
    tolist = getattr(value, "tolist", None)  # small numpy arrays
    if callable(tolist):
        return to_jsonable(tolist(), _depth + 1)
    return str(value)
