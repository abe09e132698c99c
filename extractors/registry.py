"""Which extractor handles a file: built-ins plus third-party plugins.

Plugins register under the ``xtract.extractors`` entry-point group; each entry
point names an ``Extractor`` object (or a zero-argument callable returning one or
a list of them). They are dispatched exactly like the built-ins.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from functools import lru_cache
from importlib.metadata import entry_points

from extractors.base import Extractor
from extractors.detect import (
    GENERIC_MIMES,
    decode_text_head,
    mime_from_extension,
    mime_from_head,
    read_head,
    signature_mime,
    sniff_text,
)
from extractors.physical import PHYSICAL
from extractors.zarr_store import ZARR, is_zarr_member

ENTRY_POINT_GROUP = "xtract.extractors"
#: Extensions whose content decides between a table and free text.
AMBIGUOUS_EXTENSIONS = frozenset({"", "txt", "dat", "text", "log", "out", "asc", "data"})

log = logging.getLogger(__name__)


def builtin_extractors() -> list[Extractor]:
    """The extractors shipped with the package (imported lazily: they pull heavy libraries)."""
    from extractors import builtins

    return list(builtins.BUILTINS)


def _plugin_extractors() -> list[Extractor]:
    found: list[Extractor] = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            obj = ep.load()
            if callable(obj) and not isinstance(obj, Extractor):
                obj = obj()
            items = obj if isinstance(obj, (list, tuple)) else [obj]
            for item in items:
                if not isinstance(item, Extractor):
                    raise TypeError(f"{type(item).__name__} is not an Extractor")
                found.append(item)
        except Exception as exc:  # noqa: BLE001 - a broken plugin must not break dispatch
            log.warning("extractor plugin %s failed to load: %s", ep.name, exc)
    return found


class Registry:
    """Extension and mime lookup tables over a fixed list of extractors."""

    def __init__(self, extractors: list[Extractor]) -> None:
        self.by_name: dict[str, Extractor] = {}
        self.by_extension: dict[str, Extractor] = {}
        self.by_mime: dict[str, Extractor] = {}
        for ex in sorted(extractors, key=lambda e: e.priority, reverse=True):
            # later (lower priority number) entries overwrite earlier ones
            self.by_name[ex.name] = ex
            for ext in ex.extensions:
                self.by_extension[ext] = ex
            for mime in ex.mimes:
                self.by_mime[mime] = ex
        self.by_name.setdefault(PHYSICAL.name, PHYSICAL)
        #: Extractors with a content sniff, asked in priority order when a head has no signature.
        self.sniffers: list[Extractor] = sorted((e for e in self.by_name.values() if e.sniff is not None),
                                                key=lambda e: (e.priority, e.name))
        #: Changes whenever any extractor's version does; part of the fingerprint of
        #: files whose extractor is only decided by content at extraction time.
        self.signature = ",".join(f"{n}={e.version}" for n, e in sorted(self.by_name.items()))

    def preload_modules(self, names: Iterable[str]) -> list[str]:
        """Modules to import in a worker fork server for a run that will use these extractors.

        Importing pydicom, h5py or netCDF4 costs each fresh worker 0.1-0.3 s; the group stage
        knows which extractors its groups need, so a pool can preload just those.
        """
        out: list[str] = []
        for name in names:
            ex = self.by_name.get(name)
            for mod in (ex.preload if ex is not None else ()):
                if mod not in out:
                    out.append(mod)
        return out

    def get(self, name: str) -> Extractor:
        try:
            return self.by_name[name]
        except KeyError:
            raise KeyError(f"no extractor named {name!r}; known: {sorted(self.by_name)}") from None

    def for_extension(self, extension: str) -> tuple[str | None, Extractor | None]:
        """(mime, extractor) from the extension alone; cheap, no I/O."""
        mime = mime_from_extension(extension)
        ex = self.by_extension.get(extension)
        if ex is None and mime is not None and extension not in AMBIGUOUS_EXTENSIONS:
            ex = self.by_mime.get(mime)
        return mime, ex

    def for_content(self, head: bytes) -> tuple[str | None, Extractor | None]:
        mime = mime_from_head(head)
        ex = self.by_mime.get(mime) if mime else None
        if ex is None or mime in GENERIC_MIMES:
            sniffed = self._sniffed(head)
            if sniffed is not None:
                return next(iter(sorted(sniffed.mimes)), mime), sniffed
        return mime, ex

    def _sniffed(self, head: bytes, skip: frozenset[str] = frozenset()) -> Extractor | None:
        for ex in self.sniffers:
            if ex.name not in skip and _sniff(ex, head):
                return ex
        return None

    def fallbacks(self, path: str, extension: str, tried: set[str]) -> list[tuple[str | None, Extractor]]:
        """The next candidates for a file whose extractor said "not my format", in order.

        Content signature, then the sniffers, then the text sniff (JSON, XML, tables), and
        for any text at all the free-text extractor last: each at most once, never one
        already tried. Called only after a refusal, so well-named files pay nothing.
        """
        try:
            head = read_head(path)
        except OSError:
            return []
        out: list[tuple[str | None, Extractor]] = []
        seen = set(tried) | {PHYSICAL.name}

        def add(mime: str | None, ex: Extractor | None) -> None:
            if ex is not None and ex.name not in seen:
                seen.add(ex.name)
                out.append((mime, ex))

        strong = signature_mime(head)
        if strong:
            add(strong, self.by_mime.get(strong))
        for ex in self.sniffers:
            if _sniff(ex, head):
                add(next(iter(sorted(ex.mimes)), None), ex)
        if head and decode_text_head(head) is not None:
            tmime = sniff_text(head)
            add(tmime, self.by_mime.get(tmime))
            add("text/plain", self.by_mime.get("text/plain"))
        return out

    def infer(self, path: str, extension: str) -> tuple[str | None, Extractor | None]:
        """(mime, extractor) for one file: extension first, checked against the file's head.

        Silent or ambiguous extensions (none, .txt, .dat) are decided by content. A
        specific extension is kept unless the head clearly contradicts it: a strong
        magic signature of another format (a PNG named .csv), or plain text where a
        binary format was promised (a CSV named .h5). Garbage with no signature stays
        with the extension's extractor, which then fails with a clear error.
        """
        if (extension in ("", "json") or extension.isdigit() or extension in ZARR.extensions) and \
                is_zarr_member(path) and ZARR.name in self.by_name:
            return "application/x-zarr", self.by_name[ZARR.name]  # a Zarr store's metadata or chunk file
        mime, ex = self.for_extension(extension)
        specific = ex is not None and extension not in AMBIGUOUS_EXTENSIONS
        if specific and ex.kind == "any":  # type: ignore[union-attr]
            return mime, ex
        try:
            head = read_head(path)
        except OSError:
            return mime, ex
        if specific:
            return self._check_promise(mime, ex, head)  # type: ignore[arg-type]
        cmime, cex = self.for_content(head)
        if cmime in GENERIC_MIMES and mime and mime not in GENERIC_MIMES:
            cmime = mime  # ".mat" says more than "application/octet-stream"
        return cmime, cex

    def _check_promise(self, mime: str | None, ex: Extractor, head: bytes) -> tuple[str | None, Extractor | None]:
        if not head:
            return mime, ex  # empty: the extractor reports it
        strong = signature_mime(head)
        if strong is not None:
            if ex.fits_content(strong):
                return mime, ex
            return strong, self.by_mime.get(strong)
        if ex.kind == "binary" and decode_text_head(head) is not None:
            tmime = sniff_text(head)
            if tmime != "application/octet-stream":
                return tmime, self.by_mime.get(tmime)
        return mime, ex


def _sniff(ex: Extractor, head: bytes) -> bool:
    try:
        return bool(ex.sniff(head))  # type: ignore[misc]
    except Exception:  # noqa: BLE001 - a broken sniff must not break dispatch
        return False


@lru_cache(maxsize=1)
def default_registry() -> Registry:
    """Built-ins plus installed plugins, discovered once per process."""
    return Registry(builtin_extractors() + _plugin_extractors())


def reload_registry() -> Registry:
    """Forget the cached registry and discover plugins again (after installing one)."""
    default_registry.cache_clear()
    return default_registry()
