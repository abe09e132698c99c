"""Downloads from a Globus collection: one Globus transfer to the collection that exposes this machine.

Globus moves the bytes (and retries, and checks integrity server-side), so this is
a thin adapter from ``download_files``' items onto ``tasks.habitats.globus_transfer.transfer_and_wait``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from tasks.habitats.download import Fetched, local_target
from tasks.habitats.globus_transfer import to_endpoint_path, transfer_and_wait
from xtract_blocks import XtractEndpoint
from xtract_blocks.errors import DownloadError


def download_globus(items: list[tuple[str, int | None, float | None]], dest: str, endpoint: XtractEndpoint,
                    report: Any, *, on_file: Callable[[Any], None] | None = None,
                    timeout_s: float = 3600.0) -> Any:
    """Transfer ``items`` from ``endpoint.globus_ep_id`` to ``dest`` (on ``endpoint.local_ep_id``)."""
    missing = [name for name, value in (("credentials", endpoint.credentials), ("globus_ep_id", endpoint.globus_ep_id),
                                        ("local_ep_id", getattr(endpoint, "local_ep_id", None))) if not value]
    if missing:
        raise DownloadError(f"Globus downloads need XtractEndpoint.{', '.join(missing)} (the data collection, the "
                            "collection exposing this machine, and GlobusCredentials)")
    root = getattr(endpoint, "local_ep_root", "/")
    todo = []
    for remote, size, _ in items:
        local = local_target(dest, remote)
        if size is not None and os.path.isfile(local) and os.path.getsize(local) == size:
            report.skipped += 1
            if on_file:
                on_file(Fetched(remote, local, skipped=True))
            continue
        os.makedirs(os.path.dirname(local), exist_ok=True)
        todo.append((remote, local))
    if todo:
        client = endpoint.credentials.get_transfer_client()  # type: ignore[union-attr]
        result = transfer_and_wait(client, endpoint.globus_ep_id, endpoint.local_ep_id,  # type: ignore[arg-type]
                                   [(r, to_endpoint_path(loc, root), False) for r, loc in todo],
                                   label=f"prefect-xtract download {len(todo)}", timeout_s=timeout_s)
        report.fetched += len(todo)
        report.bytes += result.bytes_transferred
        for remote, local in todo:
            if on_file:
                on_file(Fetched(remote, local))
    return report
