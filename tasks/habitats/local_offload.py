"""Offload to a directory of this machine: copy a metadata directory under a timestamp folder.

Only the published contract (index.parquet, groups/) is copied; the run's private
state (.xtract/) stays behind so reruns still resume. The source is removed only
after the copy is complete and verified.
"""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime

from tasks.store import dataset
from tasks.store.layout import MetadataDir
from xtract_blocks.errors import OffloadError

PUBLISHED = MetadataDir.PUBLISHED


def timestamp_folder(now: datetime | None = None) -> str:
    return (now or datetime.now(UTC)).strftime("%Y-%m-%d-%H:%M:%S")


def safe_join(root: str, *parts: str) -> str:
    """Join under ``root``; refuse anything (``..``, absolute parts) that escapes it."""
    root_abs = os.path.realpath(root)
    target = os.path.realpath(os.path.join(root_abs, *parts))
    if os.path.commonpath([root_abs, target]) != root_abs:
        raise OffloadError(f"refusing to write outside {root}: {os.path.join(*parts)!r}")
    return target


def offload_local(sources: dict[str, str], dest_path: str, *, delete_source: bool = False,
                  folder: str | None = None) -> str:
    """Copy each endpoint's metadata to dest_path/<timestamp>/<name>/; returns the timestamp folder."""
    dest_path = dest_path or os.getcwd()  # the seed's default dest_path="": here
    stamp = folder or timestamp_folder()
    target_root = safe_join(dest_path, stamp)
    os.makedirs(target_root, exist_ok=True)
    for name, out_dir in sources.items():
        if not dataset.exists(os.path.join(out_dir, "index.parquet")):
            raise OffloadError(f"{out_dir} holds no index.parquet: run the extraction first")
        target = safe_join(target_root, name) if len(sources) > 1 else target_root
        for item in PUBLISHED:
            src = os.path.join(out_dir, item)
            dst = os.path.join(target, item)
            if os.path.isdir(src):
                shutil.copytree(src, dst, dirs_exist_ok=True)
            elif os.path.exists(src):
                os.makedirs(target, exist_ok=True)
                shutil.copy2(src, dst)
        _verify(out_dir, target)
    if delete_source:
        for out_dir in sources.values():
            shutil.rmtree(os.path.join(out_dir, "groups"), ignore_errors=True)
            dataset.remove(os.path.join(out_dir, "index.parquet"))
            dataset.remove(MetadataDir.of(out_dir).facts)
    return target_root


def _verify(src: str, dst: str) -> None:
    want = sorted(os.listdir(os.path.join(src, "groups"))) if os.path.isdir(os.path.join(src, "groups")) else []
    have = sorted(os.listdir(os.path.join(dst, "groups"))) if os.path.isdir(os.path.join(dst, "groups")) else []
    if not set(want) <= set(have) or not dataset.exists(os.path.join(dst, "index.parquet")):
        raise OffloadError(f"copy of {src} to {dst} is incomplete")
