"""Group documents too large for a Globus Compute result, written remotely and transferred home.

The service refuses results over 10 MB. The entry function writes such a group's
document under ``remote_mdata_dir`` on the compute endpoint (a directory of the
endpoint's Globus collection) and returns a pointer (``doc_ref``). ``RemoteResults``
is the flow's side: it brings every pointed-to document of a task's results home
with one transfer (the same helper as staging and offload), deleting the remote
copies once the transfer SUCCEEDED, and puts each document back into its result,
so the xtract stage writes it into OUT/groups like any other.
"""

from __future__ import annotations

import json
import os
import posixpath
import re
import shutil
import uuid
from dataclasses import dataclass, replace
from typing import Any

from tasks.habitats.globus_transfer import collection_to_host, delete_and_wait, to_endpoint_path, transfer_and_wait
from xtract_blocks.credentials import GlobusCredentials

#: what the entry function names a document: a digest, never a path a remote side could steer
DOC_NAME = re.compile(r"^[0-9a-f]{32}\.json$")


@dataclass
class RemoteResults:
    """Where oversized documents are written remotely and fetched to; credentials stay in this process."""

    credentials: GlobusCredentials
    collection_id: str
    collection_root: str
    remote_path: str
    local_ep: str
    local_dir: str
    local_ep_root: str = "/"
    timeout_s: float = 3600.0
    poll_interval_s: float = 2.0
    fault_timeout_s: float | None = 600.0
    used: bool = False

    def __repr__(self) -> str:  # keep the credentials out of any log line
        return f"RemoteResults(collection_id={self.collection_id!r}, remote_path={self.remote_path!r})"

    def for_pool(self) -> RemoteResults:
        """A private subdirectory per pool, so concurrent runs never fetch (or delete) each other's documents."""
        sub = uuid.uuid4().hex
        return replace(self, remote_path=posixpath.join(self.remote_path, sub),
                       local_dir=os.path.join(self.local_dir, sub), used=False)

    def worker_dir(self) -> str:
        """The directory the remote function writes to, as the endpoint's workers see it."""
        return collection_to_host(self.remote_path, self.collection_root)

    def fetch(self, results: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Replace every ``doc_ref`` in ``results`` by the document it names (one transfer for all)."""
        refs = [r for r in results if r.get("doc_ref")]
        if not refs:
            return results
        bad = [r["doc_ref"].get("name") for r in refs if not DOC_NAME.match(str(r["doc_ref"].get("name")))]
        if bad:
            raise ValueError(f"the compute endpoint returned a document name that is not a digest: {bad[0]!r:.80}")
        self.used = True
        os.makedirs(self.local_dir, exist_ok=True)
        items = [(posixpath.join(self.remote_path, r["doc_ref"]["name"]),
                  to_endpoint_path(os.path.join(self.local_dir, r["doc_ref"]["name"]), self.local_ep_root), False)
                 for r in refs]
        transfer_and_wait(self.credentials.get_transfer_client(), self.collection_id, self.local_ep, items,
                          label=f"prefect-xtract large results {len(items)}", timeout_s=self.timeout_s,
                          poll_interval_s=self.poll_interval_s, fault_timeout_s=self.fault_timeout_s,
                          delete_source=True)
        out = []
        for res in results:
            ref = res.get("doc_ref")
            if ref:
                local = os.path.join(self.local_dir, ref["name"])
                with open(local, encoding="utf-8") as fh:
                    doc = json.load(fh)
                os.unlink(local)
                res = {k: v for k, v in res.items() if k != "doc_ref"} | {"doc": doc}
            out.append(res)
        return out

    def cleanup(self) -> None:
        """Remove this pool's (now empty) remote directory and the local landing directory."""
        if not self.used:
            return
        delete_and_wait(self.credentials.get_transfer_client(), self.collection_id, [self.remote_path],
                        recursive=True, label="prefect-xtract large results cleanup", timeout_s=self.timeout_s,
                        poll_interval_s=self.poll_interval_s, fault_timeout_s=self.fault_timeout_s,
                        ignore_missing=True)
        shutil.rmtree(self.local_dir, ignore_errors=True)
