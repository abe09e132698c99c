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


class NotMyFormat(ExtractorError):
    """The file is not this extractor's format: the dispatcher tries the next candidate.

    Distinct from a damaged file (plain ``ExtractorError``): a .cfg that is INI, not
    JSON, or an Analyze ``.hdr`` that is not a FITS header should reach the extractor
    that reads it, not end as an error record.
    """


class PartialMetadata(ExtractorError):
    """A damaged file of this format: what was read before the damage travels with the error.

    The record keeps ``metadata`` under the extractor's name and the error says where
    reading stopped, so a truncated file still tells a search what it held.
    """

    def __init__(self, message: str, metadata: dict[str, Any]) -> None:
        super().__init__(message)
        self.metadata = metadata


class MissingLibrary(ExtractorError):
    """The format is recognised but its optional library is not installed."""


def require(module: str, extra: str = "science", package: str | None = None) -> Any:
    """Import an optional library, or raise a record that says which extra installs it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingLibrary(f"reading this format needs {package or module}: install the {extra} extra "
                             f"(pip install 'prefect-xtract[{extra}]')") from None


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
    #: "binary", "text" or "any". With "binary"/"text" the dispatcher compares the
    #: file's head with the extension's promise and reroutes on a clear mismatch
    #: (a PNG named .csv); "any" (the plugin default) trusts the extension.
    kind: str = "any"
    #: Head mime types that are consistent with this extractor without routing
    #: other files to it (an .npz is a zip, a netCDF-4 file is HDF5, json.gz is gzip).
    accepts: frozenset[str] = field(default_factory=frozenset)
    #: Optional content sniff over the file's first 2 KB, for formats without a strong
    #: signature or extension (MiniSEED, Analyze headers): a cheap, top-level (picklable)
    #: function; True puts this extractor in the file's candidate chain.
    sniff: Callable[[bytes], bool] | None = None
    #: Modules this extractor imports on first use, worth importing once in a fork server
    #: before workers start when files of this kind are about to be extracted.
    preload: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "extensions", frozenset(e.lower().lstrip(".") for e in self.extensions))
        object.__setattr__(self, "mimes", frozenset(m.lower() for m in self.mimes))
        object.__setattr__(self, "accepts", frozenset(m.lower() for m in self.accepts))
        if self.kind not in ("binary", "text", "any"):
            raise ValueError(f"Extractor.kind must be 'binary', 'text' or 'any', not {self.kind!r}")

    def fits_content(self, mime: str) -> bool:
        """Whether a head with this (signature) mime type is plausibly this extractor's format."""
        return mime in self.mimes or mime in self.accepts


def read_source(path: str, max_bytes: int, what: str) -> bytes:
    """A source file's bytes for the code extractors: bounded, and refused when it is binary."""
    with open(path, "rb") as fh:
        raw = fh.read(max_bytes + 1)
    if len(raw) > max_bytes:
        raise ExtractorError(f"{what} source larger than {max_bytes} bytes")
    if b"\x00" in raw:
        raise ExtractorError(f"binary content (NUL bytes): not {what} source")
    return raw
