"""Compute backends and idempotent registration of the entry function.

A backend is the real service (``globus_compute_sdk.Client`` + ``Executor``, the production
path, tested against a real endpoint in ``tests/test_compute*.py``) or the dry-run stand-in
(``backend="local-standin"``, imported only when chosen). Registration is keyed on the SHA-256 of the function as the
service receives it (serialized by source), stored with the function id in a
``ComputeFunctionRegistry`` block: the same code is never registered twice, and
any change to the entry function's source registers it again.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any

from tasks.pools.globus_compute.entry import xtract_remote_batch
from tasks.pools.globus_compute.sizing import RESULT_SERIALIZERS, make_serializer
from xtract_blocks.compute import ComputeFunctionRegistry, GlobusComputeSettings
from xtract_blocks.credentials import GlobusCredentials
from xtract_blocks.errors import ConfigurationError


class ComputeConfigError(ConfigurationError):
    """Globus Compute cannot be used as configured (names what is missing)."""


class SdkBackend:
    """The Globus Compute service through globus_compute_sdk, authenticated by the credentials block."""

    def __init__(self, endpoint_id: str, credentials: GlobusCredentials | None) -> None:
        if credentials is None:
            raise ComputeConfigError(
                "Globus Compute needs GlobusCredentials on the XtractEndpoint block (a headless flow never "
                "starts an interactive login)"
            )
        from globus_compute_sdk import Client

        self.endpoint_id = endpoint_id
        self.client = Client(**credentials.compute_client_kwargs())
        self.client.fx_serializer = make_serializer()
        self.service = f"globus-compute:{self.client.web_service_address}"

    def register_function(self, fn: Callable[..., Any]) -> str:
        return str(self.client.register_function(fn))

    def knows(self, function_id: str) -> bool:
        return True  # the service keeps functions; a deleted one fails its tasks, which become error records

    def open_executor(self, workers: int, memory_limit_mb: int | None) -> Executor:
        from globus_compute_sdk import Executor as ComputeExecutor

        return ComputeExecutor(endpoint_id=self.endpoint_id, client=self.client, result_serializers=RESULT_SERIALIZERS)


class StandinBackend:
    """The dry-run stand-in (``tasks.pools.globus_compute.standin``): same payloads, local worker processes.

    Never on the production path: ``make_backend`` builds it only for ``backend="local-standin"``."""

    def __init__(self, endpoint_id: str, state_dir: str, payload_limit: int) -> None:
        self.endpoint_id = endpoint_id
        self.state_dir = os.path.abspath(os.path.expanduser(state_dir))
        self.payload_limit = payload_limit
        self.service = f"local-standin:{self.state_dir}"

    def register_function(self, fn: Callable[..., Any]) -> str:
        from tasks.pools.globus_compute.standin import store_function

        return store_function(self.state_dir, make_serializer().serialize(fn))

    def knows(self, function_id: str) -> bool:
        from tasks.pools.globus_compute.standin import registered_functions

        return function_id in registered_functions(self.state_dir)

    def open_executor(self, workers: int, memory_limit_mb: int | None) -> Executor:
        from tasks.pools.globus_compute.standin import LocalComputeEndpoint

        return LocalComputeEndpoint(self.endpoint_id, state_dir=self.state_dir, workers=workers,
                                    payload_limit=self.payload_limit, result_limit=self.payload_limit,
                                    memory_limit_mb=memory_limit_mb)


Backend = SdkBackend | StandinBackend


def make_backend(endpoint_id: str | None, settings: GlobusComputeSettings,
                 credentials: GlobusCredentials | None) -> Backend:
    if not endpoint_id:
        raise ComputeConfigError("executor 'globus-compute' needs XtractEndpoint.funcx_ep_id (a compute endpoint id)")
    if settings.backend == "local-standin":
        return StandinBackend(endpoint_id, settings.standin_dir, settings.payload_limit_bytes)
    return SdkBackend(endpoint_id, credentials)


def function_checksum(fn: Callable[..., Any] = xtract_remote_batch) -> str:
    """SHA-256 of the function exactly as registration serializes it (its source)."""
    return hashlib.sha256(make_serializer().serialize(fn).encode("utf-8")).hexdigest()


def load_registry(name: str) -> ComputeFunctionRegistry:
    try:
        return ComputeFunctionRegistry.load(name)
    except ValueError:  # no block of that name yet
        return ComputeFunctionRegistry()


def ensure_registered(backend: Backend, registry_name: str,
                      fn: Callable[..., Any] = xtract_remote_batch) -> dict[str, Any]:
    """Register ``fn`` unless the registry holds a function id for this exact code; return the entry."""
    checksum = function_checksum(fn)
    key = f"{backend.service}/{fn.__name__}"
    registry = load_registry(registry_name)
    fid = registry.lookup(key, checksum)
    if fid is not None and backend.knows(fid):
        return {"key": key, **registry.functions[key], "status": "reused"}
    fid = backend.register_function(fn)
    registry.record(key, checksum, fid)
    registry.save(registry_name, overwrite=True)
    return {"key": key, **registry.functions[key], "status": "registered"}
