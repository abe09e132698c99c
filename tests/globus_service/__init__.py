"""Loopback Globus service (Auth token grant, Transfer, Search) for tests and benchmarks."""

from tests.globus_service.server import Fault, GlobusService, apply_environ, restore_environ
from tests.globus_service.transfer import TransferBehaviour

__all__ = ["Fault", "GlobusService", "TransferBehaviour", "apply_environ", "restore_environ"]
