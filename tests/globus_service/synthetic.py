"""A synthetic tree for the loopback Transfer service: listings computed, not read from disk.

A 10M-file crawl benchmark cannot create 10M files on these machines (inodes, minutes of
ext4 work); the crawler only sees ``operation_ls`` pages, so the service can make them up.
The tree: ``/p000/d00000/f0000.csv`` ... — ``dirs`` leaf directories, 32 to a parent, the files
spread evenly over them, every size and mtime derived from the name (deterministic).
"""

from __future__ import annotations

from typing import Any

PER_PARENT = 32
_MTIME = "2024-01-02 03:04:05+00:00"


class SyntheticTree:
    def __init__(self, files: int, dirs: int) -> None:
        if dirs < 1 or files < 0:
            raise ValueError("need at least one directory and no negative file count")
        self.files, self.dirs = files, dirs
        self.per_dir, self.extra = divmod(files, dirs)
        self.parents = (dirs + PER_PARENT - 1) // PER_PARENT

    def entries(self, path: str) -> list[tuple[str, str, int]] | None:
        """(name, "dir" | "file", size) of a directory, sorted; None if ``path`` is not one."""
        parts = [p for p in path.strip("/").split("/") if p and p != "~"]
        if not parts:
            return [(f"p{i:03d}", "dir", 0) for i in range(self.parents)]
        if len(parts) == 1 and parts[0].startswith("p") and parts[0][1:].isdigit():
            first = int(parts[0][1:]) * PER_PARENT
            return [(f"d{d:05d}", "dir", 0) for d in range(first, min(first + PER_PARENT, self.dirs))]
        if len(parts) == 2 and parts[1].startswith("d") and parts[1][1:].isdigit():
            d = int(parts[1][1:])
            if d >= self.dirs or int(parts[0][1:]) != d // PER_PARENT:
                return None
            return [(f"f{i:04d}.csv", "file", 100 + (d * 31 + i) % 9000)
                    for i in range(self.per_dir + (1 if d < self.extra else 0))]
        return None

    @staticmethod
    def doc(name: str, kind: str, size: int) -> dict[str, Any]:
        return {"DATA_TYPE": "file", "name": name, "type": kind, "size": size, "last_modified": _MTIME,
                "permissions": "0644" if kind == "file" else "0755", "user": "loopback", "group": "loopback",
                "link_target": None, "link_group": None, "link_last_modified": None, "link_size": None,
                "link_user": None}
