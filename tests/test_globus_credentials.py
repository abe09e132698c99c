"""GlobusCredentials against the loopback Auth service: real token grants, fail-fast errors, no secret leaks."""

from __future__ import annotations

import pytest

from tests.globus_service.testing import loopback_globus
from xtract_blocks import CredentialsError, GlobusCredentials
from xtract_blocks.credentials import COMPUTE_RS, SEARCH_RS, TRANSFER_RS


@pytest.fixture(scope="module")
def globus():
    with loopback_globus() as lb:
        yield lb


def test_globus_client_app_lists_with_client_credentials(globus, tmp_path):
    (tmp_path / "f.txt").write_text("x")
    ep = globus.service.transfer.add_endpoint(str(tmp_path))
    creds = globus.fresh_credentials()
    names = [e["name"] for e in creds.get_transfer_client().operation_ls(ep, path="/")]
    assert names == ["f.txt"]
    assert creds.mode == "client"
    app = creds.get_app()
    assert set(app.scope_requirements) >= {TRANSFER_RS, SEARCH_RS, COMPUTE_RS}
    assert creds.compute_client_kwargs() == {"app": app}
    assert creds.get_search_client().base_url.startswith(globus.service.url)


def test_globus_rejected_secret_fails_fast_without_leaking(globus):
    secret = "s3cr3t-value-never-shown"
    creds = GlobusCredentials(client_id=globus.client_id, client_secret=secret)
    with pytest.raises(CredentialsError) as info:
        creds.get_transfer_client()
    assert "HTTP 401" in str(info.value) and globus.client_id in str(info.value)
    assert secret not in str(info.value) and secret not in repr(creds) and secret not in creds.model_dump_json()


@pytest.mark.parametrize(
    "kwargs,needle",
    [
        ({}, "client_id is empty"),
        ({"client_id": "abc"}, "neither a client_secret nor refresh_tokens"),
        ({"client_id": "abc", "refresh_tokens": {SEARCH_RS: "rt-x"}}, "no refresh token for transfer.api.globus.org"),
    ],
)
def test_globus_incomplete_credentials_fail_before_any_login(globus, kwargs, needle):
    before = len(globus.service.requests_to("/auth/"))
    with pytest.raises(CredentialsError, match=needle):
        GlobusCredentials(**kwargs).get_transfer_client()
    assert len(globus.service.requests_to("/auth/")) == before  # no network call, let alone a browser


def test_globus_native_app_refresh_token(globus, tmp_path):
    (tmp_path / "a").mkdir()
    ep = globus.service.transfer.add_endpoint(str(tmp_path))
    token = globus.service.add_refresh_token(globus.client_id, TRANSFER_RS)
    creds = GlobusCredentials(client_id=globus.client_id, refresh_tokens={TRANSFER_RS: token})
    assert creds.mode == "native"
    assert [e["type"] for e in creds.get_transfer_client().operation_ls(ep, path="/")] == ["dir"]
    with pytest.raises(CredentialsError, match="use get_authorizer"):
        creds.get_app()
    stale = GlobusCredentials(client_id=globus.client_id, refresh_tokens={TRANSFER_RS: "rt-revoked"})
    with pytest.raises(CredentialsError, match="HTTP 400"):
        stale.check()


def test_globus_credentials_block_round_trip_keeps_secrets_masked(globus):
    creds = globus.fresh_credentials()
    creds.save("globus-test-creds", overwrite=True)
    loaded = GlobusCredentials.load("globus-test-creds")
    assert loaded.client_secret.get_secret_value() == globus.client_secret
    assert globus.client_secret not in str(loaded.model_dump())
    loaded.check(TRANSFER_RS, SEARCH_RS)
