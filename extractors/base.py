"""The extractor contract.

An extractor is a plain top-level function ``path -> dict`` plus the facts the
dispatcher needs (name, version, claimed extensions and mime types). Keeping it a
plain function keeps it picklable and serialisable for remote workers (process
pools, Dask, Globus Compute), so this module must never import Prefect.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

ExtractFn = Callable[[str], dict[str, Any]]


class ExtractorError(Exception):
    """Raised by an extractor for a file it recognises but cannot read."""


@dataclass(frozen=True)
class Extractor:
    """One extractor: what it claims and the function that does the work."""

    name: str
    version: str
    func: ExtractFn
    extensions: frozenset[str] = field(default_factory=frozenset)
    mimes: frozenset[str] = field(default_factory=frozenset)
    #: Lower runs first when two extractors claim the same extension.
    priority: int = 100

    def __post_init__(self) -> None:
        object.__setattr__(self, "extensions", frozenset(e.lower().lstrip(".") for e in self.extensions))
        object.__setattr__(self, "mimes", frozenset(m.lower() for m in self.mimes))
