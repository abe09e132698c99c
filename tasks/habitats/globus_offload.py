"""Offload by Globus transfer: every endpoint's metadata to dest_ep:dest_path/YYYY-MM-DD-hh:mm:ss/.

Same semantics as the local offload (tasks/habitats/local_offload.py): only the published
contract (index.parquet, groups/) moves, each endpoint under its own name when
there are several, and the local copy is removed only after the transfer
SUCCEEDED and moved as many files as there were to move. The metadata directory
must be visible on the collection that exposes this machine (``local_ep``).
"""

from __future__ import annotations

import os
import posixpath
import shutil
from typing import Any

from tasks.habitats.globus_transfer import to_endpoint_path, transfer_and_wait
from tasks.habitats.local_offload import PUBLISHED, timestamp_folder
from tasks.store import dataset
from tasks.store.layout import MetadataDir
from xtract_blocks.credentials import GlobusCredentials
from xtract_blocks.errors import OffloadError


def offload_items(sources: dict[str, str], dest_path: str, stamp: str,
                  local_ep_root: str = "/") -> tuple[list[tuple[str, str, bool]], int, str]:
    """Transfer items, the number of files they hold, and the destination folder."""
    if ".." in dest_path.split("/") or ".." in stamp:
        raise OffloadError(f"refusing a destination with '..': {dest_path}")
    target_root = posixpath.join(dest_path, stamp)
    items: list[tuple[str, str, bool]] = []
    n_files = 0
    for name, out_dir in sorted(sources.items()):
        if not dataset.exists(os.path.join(out_dir, "index.parquet")):
            raise OffloadError(f"{out_dir} holds no index.parquet: run the extraction first")
        if "/" in name or name in ("", ".", ".."):
            raise OffloadError(f"endpoint name {name!r} cannot be a folder name")
        target = posixpath.join(target_root, name) if len(sources) > 1 else target_root
        for item in PUBLISHED:
            src = os.path.join(out_dir, item)
            if os.path.isdir(src):
                n_files += sum(len(files) for _, _, files in os.walk(src))
                items.append((to_endpoint_path(src, local_ep_root), posixpath.join(target, item), True))
            elif os.path.exists(src):
                n_files += 1
                items.append((to_endpoint_path(src, local_ep_root), posixpath.join(target, item), False))
    return items, n_files, target_root


def offload_by_transfer(credentials: GlobusCredentials, sources: dict[str, str], local_ep: str, dest_ep: str,
                        dest_path: str, *, local_ep_root: str = "/", delete_source: bool = False,
                        timeout_s: float = 3600.0, poll_interval_s: float = 5.0,
                        fault_timeout_s: float | None = None) -> dict[str, Any]:
    """Transfer the metadata of every endpoint; returns the destination folder and the task id."""
    dest_path = dest_path or "/~/"  # the seed's default dest_path="": the collection's default directory
    items, n_files, target_root = offload_items(sources, dest_path, timestamp_folder(), local_ep_root)
    client = credentials.get_transfer_client()
    result = transfer_and_wait(client, local_ep, dest_ep, items, label="prefect-xtract metadata offload",
                               timeout_s=timeout_s, poll_interval_s=poll_interval_s, fault_timeout_s=fault_timeout_s)
    if result.files_transferred < n_files:
        raise OffloadError(f"transfer {result.task_id} moved {result.files_transferred} of {n_files} files")
    if delete_source:  # the local side is this machine's disk: remove it directly, after the verified transfer
        for out_dir in sources.values():
            shutil.rmtree(os.path.join(out_dir, "groups"), ignore_errors=True)
            dataset.remove(os.path.join(out_dir, "index.parquet"))
            dataset.remove(MetadataDir.of(out_dir).facts)
    return {"path": target_root, "task_id": result.task_id, "files": result.files_transferred,
            "endpoint": dest_ep}
