"""Exclusion at crawl time: paths the crawl never records.

Two sources: the endpoint's ``exclude`` globs (``--exclude`` on the CLI) and the
metadata directory itself, which is never crawled wherever it sits (its spools,
journal and group files would otherwise become records of the next run). The rules
become one regular expression, applied to each crawl batch's path column with
Arrow's (RE2) regex kernel, so a crawl with exclusions stays columnar.

Glob syntax: ``*`` and ``?`` stay within one path component, ``**`` spans components,
``[...]`` is a character class. A pattern without ``/`` matches any component
(``.git``, ``__pycache__``, ``*.tmp``); one with ``/`` matches the path from its start
when it begins with ``/``, else any run of components (``build/cache``). A directory
matched excludes everything under it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from tasks.store.records import FileRecord
from xtract_blocks.errors import ConfigurationError


def glob_regex(pattern: str) -> str:
    """The regex body of one glob (see the module docstring), anchored at component boundaries."""
    body, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**", i):
            body.append(".*")
            i += 2
            continue
        if c == "*":
            body.append("[^/]*")
        elif c == "?":
            body.append("[^/]")
        elif c == "[":
            end = pattern.find("]", i + 2 if pattern[i + 1:i + 2] in ("!", "^") else i + 1)
            if end < 0:
                body.append(re.escape(c))
            else:
                inner = pattern[i + 1:end]
                if inner.startswith("!"):
                    inner = "^" + inner[1:]
                body.append("[" + inner.replace("\\", "\\\\") + "]")
                i = end + 1
                continue
        else:
            body.append(re.escape(c))
        i += 1
    text = "".join(body)
    start = "^" if pattern.startswith("/") else "(?:^|/)"
    return f"{start}{text}(?:/|$)"


@dataclass(frozen=True)
class CrawlFilter:
    """The compiled exclusion rules of one crawl; ``regex`` None when nothing can be excluded."""

    regex: str | None

    @classmethod
    def of(cls, patterns: list[str], metadata_dir: str | None = None) -> CrawlFilter:
        parts = []
        for p in patterns:
            p = p.strip()
            if not p or p in ("/", "**", "*"):
                raise ConfigurationError(f"exclude pattern {p!r} would exclude every file")
            parts.append(glob_regex(p.rstrip("/") if len(p) > 1 else p))
        if metadata_dir:
            parts.append("^" + re.escape(metadata_dir.rstrip("/")) + "(?:/|$)")
        regex = "|".join(f"(?:{p})" for p in parts) or None
        if regex is not None:
            try:
                re.compile(regex)
            except re.error as exc:
                raise ConfigurationError(f"bad exclude pattern in {patterns}: {exc}") from None
        return cls(regex)

    def batch(self, batch: pa.RecordBatch) -> tuple[pa.RecordBatch, int, int]:
        """The batch without excluded files; and how many files and bytes were dropped."""
        if self.regex is None or batch.num_rows == 0:
            return batch, 0, 0
        hit = pc.match_substring_regex(batch.column("path"), self.regex)
        dropped = pc.sum(hit).as_py() or 0
        if not dropped:
            return batch, 0, 0
        size = pc.sum(pc.filter(batch.column("size"), hit)).as_py() or 0
        return batch.filter(pc.invert(hit)), dropped, int(size)

    def records(self, rows: list[FileRecord]) -> tuple[list[FileRecord], int, int]:
        """The same for a crawler that yields FileRecords."""
        if self.regex is None:
            return rows, 0, 0
        rx = re.compile(self.regex)
        kept = [r for r in rows if not rx.search(r.path)]
        dropped = [r for r in rows if rx.search(r.path)] if len(kept) < len(rows) else []
        return kept, len(dropped), sum(r.size or 0 for r in dropped)
