"""Test wiring: a started service with the environment pointing globus-sdk at it, plus credentials."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from tests.globus_service.server import GlobusService, apply_environ, restore_environ
from xtract_blocks.credentials import GlobusCredentials


@dataclass
class Loopback:
    service: GlobusService
    credentials: GlobusCredentials
    client_id: str
    client_secret: str

    def fresh_credentials(self) -> GlobusCredentials:
        """New credentials (no cached tokens or clients) for the same client."""
        return GlobusCredentials(client_id=self.client_id, client_secret=self.client_secret)


@contextmanager
def loopback_globus() -> Iterator[Loopback]:
    """Start the loopback service, point globus-sdk at it, and restore the environment after."""
    with GlobusService() as service:
        previous = apply_environ(service)
        try:
            cid, secret = service.add_client()
            yield Loopback(service, GlobusCredentials(client_id=cid, client_secret=secret), cid, secret)
        finally:
            restore_environ(previous)
