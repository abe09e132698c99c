"""How the ``xtract-endpoint`` flow's parameters look in the Prefect UI's run form.

The UI's block selector sends ``{"$ref": {"block_document_id": ...}}``. Prefect's
server validates it against ``oneOf: [<block schema>, <$ref schema>]`` (its
``preprocess_schema``); a block whose fields all have defaults and which allows extra
keys — XtractEndpoint — matches *both* branches, so the server refuses every run
started from the selector (HTTP 409 "is valid under each of"). ``BlockSelector``
marks the block's definition as never carrying a ``$ref`` key, which leaves exactly
one branch for a reference and one for inline field values.
"""

from __future__ import annotations

from typing import Any

from pydantic import GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema


class BlockSelector:
    """``Annotated[SomeBlock, BlockSelector()]``: the UI's block reference validates on the server."""

    def __get_pydantic_json_schema__(self, core_schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        schema = handler(core_schema)
        definition: dict[str, Any] = handler.resolve_ref_schema(schema)
        definition["not"] = {"required": ["$ref"]}
        return schema
