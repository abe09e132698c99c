"""Shared fixtures: one real Prefect server for the whole session, real files on disk."""

from __future__ import annotations

import os
import pathlib
import sys

import pytest

import xtract_blocks._defaults  # noqa: F401  (offline Prefect settings before prefect is imported)
from tests.compute_service.fixtures import compute_loop, compute_loop_session  # noqa: F401  (real Globus Compute loop)

REPO = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session", autouse=True)
def prefect_server():
    """A real local Prefect API (SQLite) for every test; started once (~20 s)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture
def xtract_bin() -> list[str]:
    """How to run the CLI as a subprocess with this interpreter."""
    return [sys.executable, "-m", "flows.cli"]


@pytest.fixture
def subprocess_env() -> dict[str, str]:
    """Environment for CLI subprocesses: same Prefect API as the test session."""
    from prefect.settings import PREFECT_API_URL

    env = dict(os.environ)
    url = PREFECT_API_URL.value()
    if url:
        env["PREFECT_API_URL"] = url
    env["PYTHONPATH"] = str(REPO)
    return env
