"""Physical metadata: what every file has even when no extractor understands it."""

from __future__ import annotations

import os
import stat
from typing import Any

from extractors.base import Extractor

NAME = "physical"
VERSION = "1.0"


def extract_physical(path: str) -> dict[str, Any]:
    """Stat facts plus a short content sniff, so unknown files are still described."""
    st = os.stat(path)
    with open(path, "rb") as fh:
        head = fh.read(4096)
    printable = sum(32 <= b < 127 or b in (9, 10, 13) for b in head)
    return {
        "size": st.st_size,
        "mtime": st.st_mtime,
        "mode": stat.filemode(st.st_mode),
        "uid": st.st_uid,
        "gid": st.st_gid,
        "is_text": bool(head) and printable / len(head) > 0.95 and b"\x00" not in head,
        "empty": st.st_size == 0,
    }


PHYSICAL = Extractor(name=NAME, version=VERSION, func=extract_physical, priority=1000)
