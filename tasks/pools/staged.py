"""A group member as extraction workers see its staged copy (Globus staging, fetch staging).

The copy is checked against the listing, not against the crawl's disk: it has an inode of
its own (the crawl's, if any, named another disk's file), and its size must be the
listing's (``expect_size``, checked by ``extractors.batch``); a copy of another size means the
remote file changed between listing and staging, or the copy is short, and the worker makes
that an error record naming the file instead of describing another version of it.
"""

from __future__ import annotations

from typing import Any


def staged_file(f: dict[str, Any], copy: str) -> dict[str, Any]:
    """``f`` with ``copy`` as its path; a listing that gave no size (0 or None) expects none."""
    return {**f, "path": copy, "inode": None, "expect_size": f.get("size") or None}
