"""pytest fixtures: the whole Globus Compute loop, real except the web service.

``compute_loop`` (per test) gives a started chain -- loopback Auth, a real RabbitMQ broker, the
loopback Compute web service, a real ``globus-compute-endpoint`` process -- and points the SDK
at it for the test (``GLOBUS_SDK_ENVIRONMENT=local`` and the ``GLOBUS_SDK_SERVICE_URL_*``
variables, restored after). The chain itself is started once per session (about 10 s).
Where rabbitmq-server or the endpoint's venv is missing, the tests using it skip and say why.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.compute_service import broker as broker_mod
from tests.compute_service import endpoint as endpoint_mod
from tests.compute_service.broker import RabbitBroker
from tests.compute_service.endpoint import EndpointProcess
from tests.compute_service.service import ComputeService
from tests.globus_service import GlobusService


@dataclass
class ComputeLoop:
    globus: GlobusService
    broker: RabbitBroker
    service: ComputeService
    endpoint: EndpointProcess
    client_id: str
    client_secret: str

    @property
    def endpoint_id(self) -> str:
        assert self.endpoint.endpoint_id
        return self.endpoint.endpoint_id

    def environ(self) -> dict[str, str]:
        return {**self.globus.environ(), **self.service.environ()}

    def credentials(self) -> Any:
        """A fresh GlobusCredentials block for the client the endpoint runs as (the endpoint's owner)."""
        from xtract_blocks.credentials import GlobusCredentials

        return GlobusCredentials(client_id=self.client_id, client_secret=self.client_secret)

    def client(self) -> Any:
        """An unmodified ``globus_compute_sdk.Client`` authenticated by the loopback Auth service."""
        from globus_compute_sdk import Client

        return Client(app=self.credentials().get_app())

    def ensure_running(self) -> None:
        """Restart the endpoint if a test killed it."""
        proc = self.endpoint.proc
        if proc is None or proc.poll() is not None:
            self.endpoint.stop()
            self.endpoint.start()


@pytest.fixture(scope="session")
def compute_loop_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ComputeLoop]:
    reason = broker_mod.missing_reason() or endpoint_mod.missing_reason()
    if reason:
        pytest.skip(reason)
    base = tmp_path_factory.mktemp("compute-loop")
    with GlobusService() as globus:
        cid, secret = globus.add_client()
        with RabbitBroker(str(base / "broker")) as broker, ComputeService(globus, broker.url) as service:
            ep = EndpointProcess(str(base / "endpoint"), {**globus.environ(), **service.environ()}, cid, secret)
            try:
                ep.start()
                yield ComputeLoop(globus, broker, service, ep, cid, secret)
            finally:
                ep.stop()
                _stop_result_watchers()


def _stop_result_watchers() -> None:
    """SDK result watchers of executors a test abandoned (a killed pool) would retry the stopped broker."""
    import threading

    from globus_compute_sdk.sdk.executor import _ResultWatcher

    for t in threading.enumerate():
        if isinstance(t, _ResultWatcher):
            t.shutdown(wait=False, cancel_futures=True)
            t.join(timeout=5)


@pytest.fixture
def compute_loop(compute_loop_session: ComputeLoop, monkeypatch: pytest.MonkeyPatch) -> Iterator[ComputeLoop]:
    loop = compute_loop_session
    loop.ensure_running()
    for key, value in loop.environ().items():
        monkeypatch.setenv(key, value)
    yield loop
    if os.environ.get("XTRACT_KEEP_ENDPOINT_LOGS"):
        print(loop.endpoint.tail())
