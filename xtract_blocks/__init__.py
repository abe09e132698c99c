"""Prefect blocks of prefect-xtract (``prefect block register -m xtract_blocks``).

The blocks are imported on first use (module ``__getattr__``), so importing this
package — or its ``_defaults`` — stays cheap for commands that never touch Prefect
(``xtract search``). ``dir()`` lists them, which is what block registration walks.
"""

from __future__ import annotations

import importlib
from typing import Any

import xtract_blocks._defaults  # noqa: F401  (must run before prefect is imported)

_HOMES = {
    "ComputeFunctionRegistry": "xtract_blocks.compute",
    "GlobusComputeSettings": "xtract_blocks.compute",
    "CredentialsError": "xtract_blocks.credentials",
    "GlobusCredentials": "xtract_blocks.credentials",
    "XtractEndpoint": "xtract_blocks.endpoint",
    "FsspecFilesystem": "xtract_blocks.http",
    "HttpCredentials": "xtract_blocks.http",
}
__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'xtract_blocks' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_HOMES))
