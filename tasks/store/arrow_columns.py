"""Arrow arrays from Python lists, without pyarrow's pandas probe.

``pa.array(list)`` imports pandas the first time it runs (pyarrow asks whether the list
is a pandas object): 0.3-0.5 s of every run, in the flow process, at the crawl, before
any extraction can start. Built from buffers, the crawl and group stages keep pandas out
of the flow process until the report needs it, and the report imports it while the
workers extract (flows/endpoint_flow.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa

_NUMERIC = {pa.int64(): np.int64, pa.float64(): np.float64, pa.uint64(): np.uint64}
_INT32_MAX = 2**31 - 1


def strings(values: Sequence[str | None]) -> pa.Array:
    """A ``pa.string()`` array; raises UnicodeEncodeError on text that is not valid UTF-8, as ``pa.array`` does."""
    encoded = [b"" if v is None else v.encode("utf-8") for v in values]
    ends = np.cumsum(np.fromiter((len(b) for b in encoded), dtype=np.int64, count=len(encoded)))
    if len(ends) and ends[-1] > _INT32_MAX:  # past pa.string()'s 32-bit offsets: let pyarrow chunk or refuse
        return pa.array(values, pa.string())
    offsets = np.zeros(len(encoded) + 1, dtype=np.int32)
    offsets[1:] = ends
    nulls = sum(1 for v in values if v is None)
    validity = None
    if nulls:
        present = np.fromiter((v is not None for v in values), dtype=bool, count=len(values))
        validity = pa.py_buffer(np.packbits(present, bitorder="little"))
    return pa.Array.from_buffers(pa.string(), len(encoded),
                                 [validity, pa.py_buffer(offsets), pa.py_buffer(b"".join(encoded))], null_count=nulls)


def string_scalar(value: str) -> pa.Scalar:
    """A string scalar for compute kernels (``pa.scalar`` and plain ``str`` arguments probe pandas too)."""
    return strings([value])[0]


def column(values: Sequence[Any], type_: pa.DataType) -> pa.Array:
    """An array of ``type_`` from a list; types without a buffer path go through ``pa.array``."""
    if type_ == pa.string():
        return strings(values)
    dtype = _NUMERIC.get(type_)
    if dtype is None or any(v is None for v in values):
        return pa.array(values, type_)
    return pa.Array.from_buffers(type_, len(values), [None, pa.py_buffer(np.asarray(values, dtype=dtype))])


def record_batch(columns: dict[str, Sequence[Any]], schema: pa.Schema) -> pa.RecordBatch:
    """``pa.record_batch(columns, schema=schema)`` for plain lists, built by ``column``."""
    return pa.record_batch([column(columns[f.name], f.type) for f in schema], schema=schema)
