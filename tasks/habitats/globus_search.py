"""Globus Search ingest of the group metadata, in size-bounded GMetaList batches.

One GMetaEntry per group: subject ``globus://<collection>/<path of its first
file>`` (so a re-run replaces, never duplicates), ``visible_to`` from the caller,
content = the group document. Entries stream from groups/*.json into batches kept
under the service's request-size limit (10 MB; we stay below it with a margin);
each ingest task is polled to SUCCESS or FAILED. Groups the run skipped as
unchanged are not re-sent.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import globus_sdk
import pyarrow.parquet as pq

from tasks.store.layout import MetadataDir
from xtract_blocks.credentials import GlobusCredentials
from xtract_blocks.errors import SearchIngestError

#: Globus Search rejects ingest requests over 10 MB; leave room for the envelope.
MAX_INGEST_BYTES = 9 * 1024 * 1024
MAX_ENTRIES = 5000


@dataclass
class IngestReport:
    entries: int = 0
    batches: int = 0
    too_large: list[str] = field(default_factory=list)
    task_ids: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"entries": self.entries, "batches": self.batches, "too_large": self.too_large,
                "task_ids": self.task_ids}


def subject_for(endpoint_id: str, path: str) -> str:
    return f"globus://{endpoint_id}/{path.lstrip('/')}"


def changed_group_ids(index_path: str) -> set[str]:
    """Groups this run extracted (any member not 'skipped')."""
    table = pq.read_table(index_path, columns=["group_id", "status"])
    return {g for g, s in zip(table["group_id"].to_pylist(), table["status"].to_pylist(), strict=True)
            if s != "skipped"}


def iter_entries(out_dir: str, endpoint_id: str, visible_to: list[str], *,
                 only: set[str] | None = None) -> Iterator[dict[str, Any]]:
    """GMetaEntries of the group documents under out_dir/groups."""
    groups_dir = MetadataDir.of(out_dir).groups
    with os.scandir(groups_dir) as it:
        names = sorted(e.name for e in it if e.name.endswith(".json") and not e.name.startswith("."))
    for name in names:
        if only is not None and name[:-5] not in only:
            continue
        with open(os.path.join(groups_dir, name), encoding="utf-8") as fh:
            doc = json.load(fh)
        first = min(f["path"] for f in doc["files"]) if doc["files"] else doc["group_id"]
        yield {"subject": subject_for(doc.get("endpoint") or endpoint_id, first), "visible_to": visible_to,
               "content": doc}


def gmeta_batches(entries: Iterable[dict[str, Any]], report: IngestReport, *, max_bytes: int = MAX_INGEST_BYTES,
                  max_entries: int = MAX_ENTRIES) -> Iterator[list[dict[str, Any]]]:
    """Cut entries into GMetaLists whose JSON stays under max_bytes; a lone oversized entry is reported."""
    batch: list[dict[str, Any]] = []
    size = 0
    for entry in entries:
        n = len(json.dumps(entry, ensure_ascii=False).encode()) + 2
        if n > max_bytes:
            report.too_large.append(entry["subject"])
            continue
        if batch and (size + n > max_bytes or len(batch) >= max_entries):
            yield batch
            batch, size = [], 0
        batch.append(entry)
        size += n
    if batch:
        yield batch


def wait_ingest(client: globus_sdk.SearchClient, task_id: str, *, timeout_s: float, poll_interval_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    while True:
        state = str(client.get_task(task_id)["state"])
        if state in ("SUCCESS", "FAILED"):
            return state
        if time.monotonic() >= deadline:
            raise SearchIngestError(f"ingest task {task_id} still {state} after {timeout_s:.0f}s")
        time.sleep(poll_interval_s)


def ingest_metadata(client: globus_sdk.SearchClient, index_id: str, entries: Iterable[dict[str, Any]], *,
                    max_bytes: int = MAX_INGEST_BYTES, timeout_s: float = 600.0,
                    poll_interval_s: float = 2.0) -> IngestReport:
    """Ingest every entry; raises SearchIngestError naming the failed tasks after all are polled."""
    report = IngestReport()
    for gmeta in gmeta_batches(entries, report, max_bytes=max_bytes):
        try:
            res = client.ingest(index_id, {"ingest_type": "GMetaList", "ingest_data": {"gmeta": gmeta}})
        except globus_sdk.GlobusAPIError as exc:
            raise SearchIngestError(f"ingest into {index_id} rejected: HTTP {exc.http_status} {exc.code}") from None
        report.task_ids.append(str(res["task_id"]))
        report.entries += len(gmeta)
        report.batches += 1
    failed = [t for t in report.task_ids
              if wait_ingest(client, t, timeout_s=timeout_s, poll_interval_s=poll_interval_s) == "FAILED"]
    if failed:
        raise SearchIngestError(f"{len(failed)} of {len(report.task_ids)} ingest task(s) FAILED: {failed[:5]}")
    return report


def search_ingest(credentials: GlobusCredentials, index_id: str, out_dir: str, endpoint_id: str, *,
                  visible_to: list[str], poll_interval_s: float = 2.0) -> dict[str, Any]:
    """Ingest this run's new or changed group metadata into a Globus Search index."""
    only = changed_group_ids(MetadataDir.of(out_dir).index)
    client = credentials.get_search_client()
    report = ingest_metadata(client, index_id, iter_entries(out_dir, endpoint_id, visible_to, only=only),
                             poll_interval_s=poll_interval_s)
    return report.as_dict()
