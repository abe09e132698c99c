"""Payload sizing with the Globus Compute SDK's own serializer.

The service refuses a task whose serialized arguments exceed 10 MB, so a batch is
measured exactly as ``globus_compute_sdk.sdk.batch.Batch.add`` packs it
(``pack_buffers([serialize(args), serialize(kwargs)])``) and halved until every
part fits. Arguments go as JSON (``JSONData``): our payloads are plain dicts, and
JSON is readable on any Python version an endpoint runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from globus_compute_sdk.serialize import ComputeSerializer, JSONData, PureSourceTextInspect

from xtract_blocks.errors import PayloadTooLarge

#: The Globus Compute web service's limit on a task's serialized payload (and on its result).
PAYLOAD_LIMIT = 10 * 1024 * 1024
#: Result budget the entry function aims for, leaving room for the service's envelope.
RESULT_BUDGET = 9 * 1024 * 1024
#: Import path sent with each task so the endpoint serializes results as JSON.
RESULT_SERIALIZERS = ["globus_compute_sdk.serialize.JSONData"]


def make_serializer() -> ComputeSerializer:
    """Code by source text (no pickled module references), data as JSON."""
    return ComputeSerializer(strategy_code=PureSourceTextInspect(), strategy_data=JSONData())


def group_too_large(group_id: str, size: int, limit: int) -> PayloadTooLarge:
    """One group's serialized arguments alone exceed the payload limit."""
    return PayloadTooLarge(f"PayloadTooLarge: group {group_id} serializes to {size} bytes, over the {limit}-byte "
                           "limit", group_id)


def payload_bytes(serializer: ComputeSerializer, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    """Size of the task payload the SDK would send for these arguments."""
    packed = serializer.pack_buffers([serializer.serialize(args), serializer.serialize(kwargs)])
    return len(packed.encode("utf-8"))


def fit_payload(serializer: ComputeSerializer, groups: list[dict[str, Any]], kwargs: dict[str, Any], *,
                limit: int = PAYLOAD_LIMIT) -> Iterator[list[dict[str, Any]] | PayloadTooLarge]:
    """Yield parts of ``groups`` whose payload fits; a lone group that cannot fit is yielded as the error."""
    stack = [groups]
    while stack:
        part = stack.pop()
        size = payload_bytes(serializer, (part,), kwargs)
        if size <= limit:
            yield part
        elif len(part) == 1:
            yield group_too_large(part[0]["group_id"], size, limit)
        else:
            mid = len(part) // 2
            stack.append(part[mid:])
            stack.append(part[:mid])
