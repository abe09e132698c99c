"""XtractClient: the xtract-sdk client API, on top of the ``xtract-endpoint`` flow.

Ported scripts keep their calls — ``crawl``, ``get_crawl_status``, ``crawl_and_wait``,
``flush_crawl_metadata``, ``register_containers``, ``xtract``, ``get_xtract_status``,
``offload_metadata`` — and get Prefect underneath: a crawl id is a flow run id, every
status is read back from the Prefect API (flow-run state + the table artifacts the
flow publishes), so any process can ask about any crawl by id.

``crawl`` runs the flow with ``stage='crawl'`` and ``xtract`` runs it again with
``stage='xtract'`` on that crawl's spool, each as a detached run (flows/client_launch.py)
so both calls return at once, as the seed's did. Where extraction runs follows the seed:
an endpoint's ``funcx_ep_id`` means Globus Compute on that endpoint; a collection without
one is staged to the configured compute endpoint, else refused before any work.
Differences from the seed (docs/client.md has the table): flushing never takes files away
from extraction, ``crawl_and_wait`` stops on failure, and errors are exceptions, never
``None`` entries.
"""

from __future__ import annotations

import hashlib
import os
import time
from contextlib import ExitStack
from typing import Any
from uuid import UUID

from pydantic_core import to_jsonable_python

import xtract_blocks._defaults  # noqa: F401  (offline Prefect settings before prefect is imported)
from flows.client_launch import create_endpoint_run, spawn_runner
from flows.client_status import (
    CLIENT_TAG,
    FLUSH_QUEUE_TAG,
    UnknownCrawlError,
    XtractClientError,
    as_uuid,
    crawl_statuses,
    crawl_tag,
    read_runs,
    xtract_statuses,
)
from tasks.habitats import RunNeeds, habitat_for
from tasks.habitats.globus_offload import offload_by_transfer
from tasks.habitats.local_offload import offload_local
from tasks.offload import one_source_per_directory
from tasks.pools.globus_compute.containers import ALL, container_uri
from tasks.pools.options import ExtractionOptions
from tasks.store.crawl_spool import CrawlSpoolError
from tasks.store.flush_queue import FlushQueue
from tasks.store.layout import MetadataDir
from tasks.store.state_lock import state_lock
from xtract_blocks import GlobusCredentials, XtractEndpoint
from xtract_blocks.compute import GlobusComputeSettings
from xtract_blocks.credentials import full_scope
from xtract_blocks.errors import ConfigurationError

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
        compute_settings: GlobusComputeSettings (or its block name) for Globus Compute runs: container
            runtime, and the compute endpoint a collection without funcx_ep_id is staged to.
        executor: None (default) decides per endpoint as the seed did (funcx_ep_id: Globus Compute; else
            local workers, or Globus Compute with staging for a collection when compute_settings name an
            endpoint); 'local' or 'dask' forces that engine for endpoints without funcx_ep_id.
        workers, batch_size, time_limit_s: passed to each extraction run.
    """

    def __init__(self, auth_scopes: list[str] | None = None, force_login: bool = False, *,
                 credentials: GlobusCredentials | str | None = None, executor: str | None = None,
                 compute_settings: GlobusComputeSettings | str | None = None,
                 workers: int | None = None, batch_size: int | None = None, time_limit_s: float = 120.0) -> None:
        self.credentials = self._resolve_credentials(credentials, auth_scopes)
        if force_login:
            if self.credentials is None:
                raise XtractClientError("force_login needs Globus credentials: pass credentials= (a GlobusCredentials "
                                        "block or its name) or set GLOBUS_CLIENT_ID and GLOBUS_CLIENT_SECRET")
            self.credentials.check()
        self.executor = executor
        self.extraction = ExtractionOptions(executor=executor or "local", workers=workers,  # type: ignore[arg-type]
                                            batch_size=batch_size, time_limit_s=time_limit_s)
        if isinstance(compute_settings, str):
            compute_settings = GlobusComputeSettings.load(compute_settings)
        self.compute_settings: GlobusComputeSettings | None = compute_settings
        self.crawl_ids: list[str] = []
        self.cid_to_xep_map: dict[str, XtractEndpoint] = {}
        self.xtract_ids: dict[str, str] = {}
        #: endpoint identity (``XtractEndpoint.slug()``) -> the container path registered for it
        self.container_paths: dict[str, str] = {}
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
            wanted = [full_scope(s) for s in auth_scopes]  # the seed's short names ('transfer', 'petrel', ...)
            credentials.scopes = [*credentials.scopes,
                                  *[s for s in dict.fromkeys(wanted) if s not in credentials.scopes]]
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
                raise XtractClientError(f"endpoint {xep.globus_ep_id or xep.dirs} is a Globus collection (repo_type "
                                        f"{xep.repo_type!r}): give the client or the endpoint GlobusCredentials")
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

    @staticmethod
    def _identity(param: str | dict[str, Any], xep: XtractEndpoint) -> str:
        """The identity the flow run will use for ``xep`` passed as ``param`` (its state dir, names, keys)."""
        if isinstance(param, str):
            return xep.slug()
        return XtractEndpoint(**{k: v for k, v in param.items() if k != "credentials"}).slug()

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
        seen: dict[str, int] = {}
        for i, (xep, name) in enumerate(zip(xeps, names, strict=True)):
            key = self._identity(name, xep)
            if key in seen:
                raise XtractClientError(f"endpoints {seen[key]} and {i} of this call are the same endpoint ({key}): "
                                        "their metadata would be one; give them different dirs, grouper or "
                                        "local_mdata_path, or pass it once")
            seen[key] = i
        crawl_ids = []
        for xep, name in zip(xeps, names, strict=True):
            cid = self._launch(name, xep, "crawl", tags=[FLUSH_QUEUE_TAG])
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
        """Per crawl: {crawl_id, file_ls, num_files, queue_empty}; files are handed out while the crawl runs.

        Each file is handed out once across every client and process (the queue lives in the
        endpoint's state in its metadata directory, per crawl id); ``queue_empty`` is True only
        when the crawl has finished and every file was handed out. Flushed files are still
        extracted. ``next_n_files`` (the seed's README) and ``n`` (the seed's code) are aliases.
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
            run = runs[as_uuid(cid)]
            xep = self._endpoint_of(cid, run)
            key = self._identity(run.parameters.get("endpoint"), xep)
            path = MetadataDir.of(xep.local_mdata_path).endpoint(key).flush_queue(cid)
            if not os.path.isfile(path):
                if status["status"] == "complete":
                    raise CrawlSpoolError(f"crawl {cid} has no flush queue ({path}): only crawls started by "
                                          "XtractClient.crawl keep one")
                payload.append({"crawl_id": cid, "file_ls": [], "num_files": 0, "queue_empty": False})
                continue
            with FlushQueue(path) as queue:
                files, empty = queue.take(size)
            payload.append({"crawl_id": cid, "file_ls": files, "num_files": len(files), "queue_empty": empty})
        return payload

    # -- extraction ------------------------------------------------------------------------------------
    def _compute_settings(self, key: str) -> GlobusComputeSettings:
        """The client's compute settings with the container path registered for this endpoint (if any)."""
        settings = self.compute_settings.model_copy() if self.compute_settings else GlobusComputeSettings()
        path = self.container_paths.get(key)
        if path:
            update: dict[str, Any] = {"container_path": path}
            if settings.container_type == "none":  # the seed's containers were Singularity/Apptainer images
                update["container_type"] = "apptainer"
            settings = settings.model_copy(update=update)
        return settings

    def _plan(self, xep: XtractEndpoint, key: str) -> tuple[str, GlobusComputeSettings | None]:
        """Where extraction of ``xep`` runs, as the seed decided: (executor, compute settings or None).

        funcx_ep_id: Globus Compute on that endpoint. A repository this machine cannot read in
        place (a Globus collection) without one: Globus Compute on the configured compute endpoint,
        with the files staged there; without one configured, the habitat's own staging (to
        local_ep_id) or a ConfigurationError before any work. Remote paths are never read as local.
        """
        settings = self._compute_settings(key)
        if xep.funcx_ep_id:
            return "globus-compute", settings
        remote = habitat_for(xep).needs_credentials
        if remote and settings.endpoint_id and self.executor in (None, "globus-compute"):
            return "globus-compute", settings
        if self.executor == "globus-compute":
            return "globus-compute", settings
        return self.executor or "local", (settings if self.container_paths.get(key) else None)

    def _check_plan(self, xep: XtractEndpoint, executor: str, settings: GlobusComputeSettings | None) -> None:
        """The habitat's own check of the run (staging, compute settings), before any work starts."""
        if xep.credentials is None and self.credentials is not None:
            xep = xep.model_copy(update={"credentials": self.credentials})
        needs = RunNeeds(extract=True, executor=executor, workers=self.extraction.workers, compute_settings=settings)
        try:
            habitat_for(xep).validate(xep, needs)
        except ConfigurationError as exc:
            raise XtractClientError(f"cannot extract {xep.slug()}: {exc}") from None

    def register_containers(self, endpoint: XtractEndpoint, container_path: str) -> dict[str, Any]:
        """Record the container path for this endpoint's runs; the answer says what extraction will really use.

        The path travels with the endpoint's extraction runs (in their compute settings), appears in
        their containers artifact and reaches every Globus Compute task. Local and Dask runs call
        extractors as Python functions: for them ``used`` is False and ``message`` says so.
        """
        if not container_path:
            raise ValueError("container_path is empty")
        if not isinstance(endpoint, XtractEndpoint):
            raise XtractClientError(f"expected an XtractEndpoint, got {type(endpoint).__name__}")
        named = getattr(endpoint, "_block_document_name", None) and (
            endpoint.credentials is not None or not habitat_for(endpoint).needs_credentials)
        key = endpoint.slug() if named else self._identity(
            {k: getattr(endpoint, k) for k in type(endpoint).model_fields}, endpoint)
        self.container_paths[key] = container_path
        executor, settings = self._plan(endpoint, key)
        used = executor == "globus-compute" and settings is not None and settings.container_type != "none"
        status: dict[str, Any] = {
            "status": "registered", "funcx_ep_id": endpoint.funcx_ep_id, "container_path": container_path,
            "used": used, "executor": executor,
            "container_type": settings.container_type if used and settings else None,
            "image_example": container_uri(ALL, settings) if used and settings else None,
            "message": (f"Globus Compute tasks run in {settings.container_type} images under {container_path}"
                        if used and settings else
                        f"recorded, not used: executor {executor!r} runs extractors as Python functions"),
        }
        print(f"Register containers status: {status['status']}")
        return status

    def xtract(self, crawl_ids: list[str] | str | None = None) -> list[int]:
        """Start extraction of every crawl (each waits for its crawl to finish); 200 per endpoint once started.

        Every endpoint's plan is checked before any run starts (see ``_plan``).
        """
        ids = self._ids(crawl_ids)
        with _prefect_client() as client:
            runs = read_runs(client, [as_uuid(c) for c in ids])
        launches = []
        for cid in ids:
            run = runs[as_uuid(cid)]
            name = run.parameters["endpoint"]  # exactly what the crawl ran with
            xep = self._endpoint_of(cid, run)
            executor, settings = self._plan(xep, self._identity(name, xep))
            self._check_plan(xep, executor, settings)
            options = self.extraction.model_copy(update={"executor": executor})
            extra: dict[str, Any] = {"extraction": options.model_dump(mode="json", exclude_defaults=True)}
            if settings is not None:
                extra["compute_settings"] = to_jsonable_python(
                    {k: getattr(settings, k) for k in type(settings).model_fields})
            launches.append((cid, name, xep, extra))
        codes = []
        for cid, name, xep, extra in launches:
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

        dest_ep_id None: dest_path is a directory on this machine ("" = the current directory).
        Endpoints sharing a metadata directory share one index: it is copied once, named after
        all of them (``a+b``); two crawls of the same endpoint are an error. Otherwise a Globus transfer from
        each endpoint's ``local_ep_id`` collection to dest_ep_id, waited on for at most ``timeout`` s.
        Waits (within ``timeout``) for running extractions; any failed extraction is an error.
        """
        ids = self._ids(crawl_ids)
        statuses = self.wait_for_xtract(ids, timeout_s=timeout)
        failed = [s for s in statuses if s["xtract_status"] != "complete"]
        if failed:
            raise XtractClientError(f"extraction of crawl {failed[0]['crawl_id']} {failed[0]['xtract_status']}: "
                                    f"{failed[0]['message']}; nothing offloaded")
        with _prefect_client() as client:
            runs = read_runs(client, [as_uuid(c) for c in ids])
        endpoints = {cid: self._endpoint_of(cid, runs[as_uuid(cid)]) for cid in ids}
        by_key: dict[str, str] = {}
        for cid, ep in endpoints.items():
            key = self._identity(runs[as_uuid(cid)].parameters.get("endpoint"), ep)
            if key in by_key:
                raise XtractClientError(f"crawls {by_key[key]} and {cid} are the same endpoint ({key}): offload "
                                        "one of them; nothing offloaded")
            by_key[key] = cid
        sources = one_source_per_directory({key: MetadataDir.of(endpoints[cid].local_mdata_path).root
                                            for key, cid in by_key.items()})
        with ExitStack() as held:  # no run writes a directory while it is copied (sorted: no lock-order cycle)
            me = f"XtractClient offload (pid {os.getpid()})"
            for root in sorted(set(sources.values())):
                held.enter_context(state_lock(MetadataDir(root).lock, flow_run=me, timeout_s=timeout))
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
