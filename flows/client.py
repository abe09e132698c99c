"""XtractClient: the xtract-sdk client API, on top of the ``xtract-endpoint`` flow.

Ported scripts keep their calls — ``crawl``, ``get_crawl_status``, ``crawl_and_wait``,
``flush_crawl_metadata``, ``register_containers``, ``xtract``, ``get_xtract_status``,
``offload_metadata`` — and get Prefect underneath: a crawl id is a flow run id, every
status is read back from the Prefect API (flow-run state + the table artifacts the
flow publishes), so any process can ask about any crawl by id.

``crawl`` runs the flow with ``stage='crawl'`` and ``xtract`` runs it again with
``stage='xtract'`` on that crawl's spool, each as a detached run (flows/client_launch.py)
so both calls return at once, as the seed's did. Differences from the seed, on purpose:
flushing never takes files away from extraction, ``crawl_and_wait`` stops on failure,
and errors are exceptions, never ``None`` entries.
"""

from __future__ import annotations

import hashlib
import os
import time
from typing import Any
from uuid import UUID

from pydantic_core import to_jsonable_python

import xtract_blocks._defaults  # noqa: F401  (offline Prefect settings before prefect is imported)
from flows.client_launch import create_endpoint_run, spawn_runner
from flows.client_status import (
    CLIENT_TAG,
    UnknownCrawlError,
    XtractClientError,
    as_uuid,
    crawl_statuses,
    crawl_tag,
    read_runs,
    xtract_statuses,
)
from tasks.habitats import habitat_for
from tasks.habitats.globus_offload import offload_by_transfer
from tasks.habitats.local_offload import offload_local
from tasks.pools.options import ExtractionOptions
from tasks.store.crawl_spool import CrawlSpoolError, SpoolCursor, read_spool_page
from tasks.store.layout import MetadataDir
from xtract_blocks import GlobusCredentials, XtractEndpoint

__all__ = ["CrawlSpoolError", "UnknownCrawlError", "XtractClient", "XtractClientError", "XtractEndpoint"]

FINAL_CRAWL = ("complete", "failed")


def _prefect_client() -> Any:
    from prefect.client.orchestration import get_client

    return get_client(sync_client=True)


class XtractClient:
    """The seed's client. Local endpoints need nothing; Globus ones need a GlobusCredentials block.

    Args:
        auth_scopes: extra Globus scopes, added to the credentials' scopes (the seed's argument).
        force_login: the seed forced an interactive login; runs here are headless, so this instead
            obtains tokens now and fails fast if the credentials are refused.
        credentials: a GlobusCredentials block or its name; default: GLOBUS_CLIENT_ID/GLOBUS_CLIENT_SECRET
            from the environment, else none (fine for local endpoints).
        executor, workers, batch_size, time_limit_s: passed to each extraction run.
    """

    def __init__(self, auth_scopes: list[str] | None = None, force_login: bool = False, *,
                 credentials: GlobusCredentials | str | None = None, executor: str = "local",
                 workers: int | None = None, batch_size: int | None = None, time_limit_s: float = 120.0) -> None:
        self.credentials = self._resolve_credentials(credentials, auth_scopes)
        if force_login:
            if self.credentials is None:
                raise XtractClientError("force_login needs Globus credentials: pass credentials= (a GlobusCredentials "
                                        "block or its name) or set GLOBUS_CLIENT_ID and GLOBUS_CLIENT_SECRET")
            self.credentials.check()
        self.executor = executor
        self.extraction = ExtractionOptions(executor=executor, workers=workers, batch_size=batch_size,  # type: ignore[arg-type]
                                            time_limit_s=time_limit_s)
        self.crawl_ids: list[str] = []
        self.cid_to_xep_map: dict[str, XtractEndpoint] = {}
        self.xtract_ids: dict[str, str] = {}
        self.container_paths: dict[str, str] = {}
        self._cursors: dict[str, SpoolCursor] = {}
        self._procs: list[Any] = []

    # -- credentials and endpoints ---------------------------------------------------------------------
    @staticmethod
    def _resolve_credentials(credentials: GlobusCredentials | str | None,
                             auth_scopes: list[str] | None) -> GlobusCredentials | None:
        if isinstance(credentials, str):
            try:
                credentials = GlobusCredentials.load(credentials)
            except ValueError as exc:
                raise XtractClientError(f"no GlobusCredentials block named {credentials!r}: {exc}") from None
        elif credentials is None and os.environ.get("GLOBUS_CLIENT_ID") and os.environ.get("GLOBUS_CLIENT_SECRET"):
            credentials = GlobusCredentials(client_id=os.environ["GLOBUS_CLIENT_ID"],
                                            client_secret=os.environ["GLOBUS_CLIENT_SECRET"])
        if credentials is not None and auth_scopes:
            credentials.scopes = [*credentials.scopes, *[s for s in auth_scopes if s not in credentials.scopes]]
        return credentials

    def _endpoint_param(self, xep: XtractEndpoint) -> str | dict[str, Any]:
        """The ``endpoint`` parameter of the runs: a saved block's name, else the endpoint's fields.

        A block with a name runs as saved (the UI shows the name, artifact keys use it);
        an unsaved endpoint travels as its field values, which avoids Block.save (seconds of
        schema work per call). Secrets never travel as values: credentials go as a
        ``$ref`` to a saved GlobusCredentials block, saved here when they are not yet.
        """
        if not isinstance(xep, XtractEndpoint):
            raise XtractClientError(f"expected an XtractEndpoint, got {type(xep).__name__}")
        credentials = xep.credentials
        if credentials is None and habitat_for(xep).needs_credentials:
            if self.credentials is None:
                raise XtractClientError(f"endpoint {xep.globus_ep_id or xep.dirs} is a {xep.repo_type} endpoint: give "
                                        "the client or the endpoint GlobusCredentials")
            credentials = self.credentials
        name = getattr(xep, "_block_document_name", None)
        if name and credentials is xep.credentials:
            return name
        fields = {k: getattr(xep, k) for k in type(xep).model_fields if k != "credentials"}
        fields.update(xep.model_extra or {})
        param: dict[str, Any] = to_jsonable_python(fields)
        if credentials is not None:
            param["credentials"] = {"$ref": {"block_document_id": str(self._credentials_id(credentials))}}
        return param

    @staticmethod
    def _credentials_id(credentials: GlobusCredentials) -> UUID:
        block_id = getattr(credentials, "_block_document_id", None)
        if block_id is None:
            digest = hashlib.sha1(credentials.client_id.encode()).hexdigest()[:12]
            block_id = credentials.save(f"xtract-client-{digest}", overwrite=True)
        return block_id

    def _endpoint_of(self, crawl_id: str, run: Any = None) -> XtractEndpoint:
        """The endpoint of a crawl: this client's object, else rebuilt from the crawl run's parameters."""
        if crawl_id in self.cid_to_xep_map:
            return self.cid_to_xep_map[crawl_id]
        if run is None:
            with _prefect_client() as client:
                run = read_runs(client, [as_uuid(crawl_id)])[as_uuid(crawl_id)]
        ref = run.parameters.get("endpoint")
        if isinstance(ref, str):
            return XtractEndpoint.load(ref)
        if isinstance(ref, dict) and "$ref" not in ref:  # where the metadata is needs no credentials
            return XtractEndpoint(**{k: v for k, v in ref.items() if k != "credentials"})
        raise XtractClientError(f"crawl {crawl_id} has no usable endpoint parameter")

    def _ids(self, crawl_ids: list[str] | str | None) -> list[str]:
        if isinstance(crawl_ids, str | UUID):
            crawl_ids = [str(crawl_ids)]
        ids = [str(c) for c in crawl_ids] if crawl_ids is not None else list(self.crawl_ids)
        if not ids:
            raise XtractClientError("Missing crawl ID. A crawl ID must be provided or the .crawl() method must be run")
        return ids

    def _launch(self, name: str | dict[str, Any], xep: XtractEndpoint, stage: str, *, tags: list[str],
                after: str | None = None, extra: dict[str, Any] | None = None) -> str:
        params: dict[str, Any] = {"endpoint": name, "stage": stage, **(extra or {})}
        run_id = create_endpoint_run(params, tags=[CLIENT_TAG, f"stage:{stage}", *tags])
        state_dir = MetadataDir.of(xep.local_mdata_path).state
        log = os.path.join(state_dir, f"run-{run_id}.log")
        self._procs.append(spawn_runner(run_id, log_path=log, after=as_uuid(after) if after else None))
        return str(run_id)

    # -- crawl -----------------------------------------------------------------------------------------
    def crawl(self, xeps: list[XtractEndpoint]) -> list[str]:
        """Start one crawl per endpoint and return at once; ids also go to ``crawl_ids`` and ``cid_to_xep_map``."""
        if isinstance(xeps, XtractEndpoint):
            xeps = [xeps]
        names = [self._endpoint_param(xep) for xep in xeps]  # validate all before starting any
        crawl_ids = []
        for xep, name in zip(xeps, names, strict=True):
            cid = self._launch(name, xep, "crawl", tags=[])
            crawl_ids.append(cid)
            self.cid_to_xep_map[cid] = xep
        self.crawl_ids = crawl_ids
        return crawl_ids

    def get_crawl_status(self, crawl_ids: list[str] | str | None = None) -> list[dict[str, Any]]:
        """Per crawl: {crawl_id, status (pending|crawling|complete|failed), message, data{bytes,files,groups}}."""
        with _prefect_client() as client:
            return crawl_statuses(client, self._ids(crawl_ids))

    def crawl_and_wait(self, xeps: list[XtractEndpoint], *, interval_s: float = 2.0,
                       timeout_s: float | None = None) -> list[dict[str, Any]]:
        """Crawl, then print every status every ``interval_s`` until all crawls completed or failed."""
        ids = self.crawl(xeps)
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            statuses = self.get_crawl_status(ids)
            for s in statuses:
                print(s)
            if all(s["status"] in FINAL_CRAWL for s in statuses):
                return statuses
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"crawls still running after {timeout_s}s: "
                                   + ", ".join(s["crawl_id"] for s in statuses if s["status"] not in FINAL_CRAWL))
            time.sleep(interval_s)

    def flush_crawl_metadata(self, crawl_ids: list[str] | str | None = None, first_n_files: int = 100, *,
                             next_n_files: int | None = None, n: int | None = None) -> list[dict[str, Any]]:
        """Per crawl: {crawl_id, file_ls, num_files, queue_empty}; each file once per client, none lost to extraction.

        ``next_n_files`` (the seed's README) and ``n`` (the seed's code) are accepted as aliases.
        Until a crawl has finished its list is empty and ``queue_empty`` is False.
        """
        size = next((v for v in (next_n_files, n) if v is not None), first_n_files)
        if size < 1:
            raise ValueError(f"first_n_files must be at least 1, got {size}")
        ids = self._ids(crawl_ids)
        with _prefect_client() as client:
            statuses = {s["crawl_id"]: s for s in crawl_statuses(client, ids)}
            runs = read_runs(client, [as_uuid(c) for c in ids])
        payload = []
        for cid in ids:
            status = statuses[cid]
            if status["status"] == "failed":
                raise XtractClientError(f"crawl {cid} failed: {status['message']}")
            if status["status"] != "complete":
                payload.append({"crawl_id": cid, "file_ls": [], "num_files": 0, "queue_empty": False})
                continue
            run = runs[as_uuid(cid)]
            spool = MetadataDir.of(self._endpoint_of(cid, run).local_mdata_path).crawl_spool
            cursor = self._cursors.setdefault(cid, SpoolCursor())
            if cursor.identity is None and run.end_time is not None and os.path.exists(spool) \
                    and os.stat(spool).st_mtime > run.end_time.timestamp() + 1.0:
                raise CrawlSpoolError(f"the crawl spool {spool} was rewritten by a crawl newer than {cid}")
            files, empty = read_spool_page(spool, cursor, size)
            payload.append({"crawl_id": cid, "file_ls": files, "num_files": len(files), "queue_empty": empty})
        return payload

    # -- extraction ------------------------------------------------------------------------------------
    def register_containers(self, endpoint: XtractEndpoint, container_path: str) -> dict[str, Any]:
        """Record where the extractor containers of an endpoint's compute live (used by remote executors).

        Local and Dask runs execute extractors as Python functions, so for them this only records the path.
        """
        if not container_path:
            raise ValueError("container_path is empty")
        key = endpoint.funcx_ep_id or "local"
        self.container_paths[key] = container_path
        status = {"status": "registered", "funcx_ep_id": endpoint.funcx_ep_id, "container_path": container_path,
                  "used": bool(endpoint.funcx_ep_id) and self.executor == "globus-compute"}
        print(f"Register containers status: {status['status']}")
        return status

    def xtract(self, crawl_ids: list[str] | str | None = None) -> list[int]:
        """Start extraction of every crawl (each waits for its crawl to finish); 200 per endpoint once started."""
        ids = self._ids(crawl_ids)
        with _prefect_client() as client:
            runs = read_runs(client, [as_uuid(c) for c in ids])
        codes = []
        for cid in ids:
            run = runs[as_uuid(cid)]
            name = run.parameters["endpoint"]  # exactly what the crawl ran with
            extra = {"extraction": self.extraction.model_dump(mode="json", exclude_defaults=True)}
            xep = self._endpoint_of(cid, run)
            self.xtract_ids[cid] = self._launch(name, xep, "xtract", tags=[crawl_tag(cid)], after=cid, extra=extra)
            codes.append(200)
        return codes

    def get_xtract_status(self, crawl_ids: list[str] | str | None = None) -> list[dict[str, Any]]:
        """Per crawl: {xtract_status (pending|extracting|complete|failed), xtract_counters (seed names), ...}."""
        with _prefect_client() as client:
            return xtract_statuses(client, self._ids(crawl_ids))

    def wait_for_xtract(self, crawl_ids: list[str] | str | None = None, *, timeout_s: float = 600.0,
                        interval_s: float = 1.0) -> list[dict[str, Any]]:
        """Block until every extraction completed or failed; returns the statuses."""
        deadline = time.monotonic() + timeout_s
        while True:
            statuses = self.get_xtract_status(crawl_ids)
            if all(s["xtract_status"] in FINAL_CRAWL for s in statuses):
                return statuses
            if time.monotonic() > deadline:
                raise TimeoutError(f"extraction still running after {timeout_s}s")
            time.sleep(interval_s)

    # -- offload ---------------------------------------------------------------------------------------
    def offload_metadata(self, dest_ep_id: str | None = None, dest_path: str = "", timeout: float = 600,
                         delete_source: bool = False, *, crawl_ids: list[str] | str | None = None) -> str:
        """Copy every endpoint's metadata to dest_path/YYYY-MM-DD-hh:mm:ss/ and return that folder.

        dest_ep_id None: dest_path is a directory on this machine. Otherwise a Globus transfer from
        each endpoint's ``local_ep_id`` collection to dest_ep_id, waited on for at most ``timeout`` s.
        Waits (within ``timeout``) for running extractions; any failed extraction is an error.
        """
        ids = self._ids(crawl_ids)
        statuses = self.wait_for_xtract(ids, timeout_s=timeout)
        failed = [s for s in statuses if s["xtract_status"] != "complete"]
        if failed:
            raise XtractClientError(f"extraction of crawl {failed[0]['crawl_id']} {failed[0]['xtract_status']}: "
                                    f"{failed[0]['message']}; nothing offloaded")
        endpoints = {cid: self._endpoint_of(cid) for cid in ids}
        sources = {ep.slug(): MetadataDir.of(ep.local_mdata_path).root for ep in endpoints.values()}
        if dest_ep_id is None:
            return offload_local(sources, dest_path, delete_source=delete_source)
        return self._offload_by_transfer(list(endpoints.values()), sources, dest_ep_id, dest_path, timeout,
                                         delete_source)

    def _offload_by_transfer(self, endpoints: list[XtractEndpoint], sources: dict[str, str], dest_ep_id: str,
                             dest_path: str, timeout: float, delete_source: bool) -> str:
        local_eps = {(ep.local_ep_id, ep.local_ep_root) for ep in endpoints}
        if len(local_eps) != 1 or None in {e for e, _ in local_eps}:
            raise XtractClientError("offload by Globus transfer needs local_ep_id (the collection exposing this "
                                    "machine's metadata directories) set, and the same, on every endpoint")
        (local_ep, root), = local_eps
        credentials = self.credentials or next((ep.credentials for ep in endpoints if ep.credentials), None)
        if credentials is None:
            raise XtractClientError("offload by Globus transfer needs GlobusCredentials on the client or endpoint")
        return offload_by_transfer(credentials, sources, local_ep, dest_ep_id, dest_path, local_ep_root=root,
                                   delete_source=delete_source, timeout_s=timeout)["path"]

    # -- processes -------------------------------------------------------------------------------------
    def wait(self, timeout_s: float | None = None) -> None:
        """Wait for the run processes this client started (they outlive the client otherwise, by design)."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        for proc in self._procs:
            proc.wait(None if deadline is None else max(0.0, deadline - time.monotonic()))
