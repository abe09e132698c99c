"""Blocks for the HTTPS and fsspec habitats: how to reach files that are not on this machine.

Secrets (bearer tokens, passwords, cloud keys) are ``SecretStr`` and are only
unwrapped when a request is built, so they never reach logs, artifacts,
metadata or exception messages. A Globus collection's HTTPS access takes a
bearer token for the collection's own ``https`` scope, obtained headless from a
GlobusCredentials block.
"""

from __future__ import annotations

from typing import Any

from prefect.blocks.abstract import CredentialsBlock
from prefect.blocks.core import Block
from pydantic import Field, SecretStr

from xtract_blocks.credentials import CredentialsError, GlobusCredentials


def globus_https_scope(collection_id: str) -> str:
    """The scope a Globus collection's HTTPS server accepts tokens for."""
    return f"https://auth.globus.org/scopes/{collection_id}/https"


class HttpCredentials(CredentialsBlock):
    """Credentials for plain HTTP(S) servers and Globus collections' HTTPS access."""

    _block_type_name = "Xtract HTTP Credentials"
    _block_type_slug = "xtract-http-credentials"
    _description = "Bearer token, basic auth or Globus HTTPS access for the 'https' habitat."

    bearer_token: SecretStr | None = Field(default=None, description="Sent as 'Authorization: Bearer <token>'.")
    username: str | None = Field(default=None, description="User for HTTP basic auth.")
    password: SecretStr | None = Field(default=None, description="Password for HTTP basic auth.")
    headers: dict[str, SecretStr] = Field(
        default_factory=dict, description="Extra request headers (API keys, cookies); kept secret."
    )
    globus_credentials: GlobusCredentials | None = Field(
        default=None, description="Get the bearer token for a Globus collection's HTTPS server from these."
    )
    globus_collection_id: str | None = Field(
        default=None, description="The Globus collection whose HTTPS server is crawled (with globus_credentials)."
    )
    verify_tls: bool = Field(default=True, description="Verify server certificates.")
    ca_bundle: str | None = Field(default=None, description="Path of a CA bundle to verify servers with.")
    timeout_s: float = Field(default=60.0, description="Connect/read timeout of one request, in seconds.")

    def _globus_token(self) -> str:
        creds, collection = self.globus_credentials, self.globus_collection_id
        if creds is None or not collection:
            raise CredentialsError("HttpCredentials: globus_credentials and globus_collection_id go together")
        scope = globus_https_scope(collection)
        if scope not in creds.scopes:
            creds = creds.model_copy(update={"scopes": [*creds.scopes, scope]})
        authorizer = creds.get_authorizer(collection)
        header = authorizer.get_authorization_header() or ""
        return header.removeprefix("Bearer ").strip()

    def auth_headers(self) -> dict[str, str]:
        """Request headers that authenticate (fetches a Globus token when configured)."""
        headers = {k: v.get_secret_value() for k, v in self.headers.items()}
        if self.bearer_token is not None and self.bearer_token.get_secret_value():
            headers["Authorization"] = f"Bearer {self.bearer_token.get_secret_value()}"
        elif self.globus_credentials is not None or self.globus_collection_id:
            headers["Authorization"] = f"Bearer {self._globus_token()}"
        return headers

    def get_client(self, *args: Any, **kwargs: Any) -> Any:
        """Credentials-block protocol: a ``requests.Session`` with these credentials and a small retry policy."""
        import requests
        from requests.adapters import HTTPAdapter
        from urllib3.util.retry import Retry

        session = requests.Session()
        retry = Retry(total=3, connect=3, read=3, backoff_factor=0.5, status_forcelist=(429, 500, 502, 503, 504),
                      allowed_methods=frozenset({"GET", "HEAD"}), respect_retry_after_header=True)
        adapter = HTTPAdapter(max_retries=retry, pool_connections=8, pool_maxsize=16)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        session.headers.update(self.auth_headers())
        if self.username:
            session.auth = (self.username, self.password.get_secret_value() if self.password else "")
        session.verify = self.ca_bundle or self.verify_tls
        return session



class FsspecFilesystem(Block):
    """Any fsspec filesystem the user has installed (s3, gcs, abfs, sftp, memory, file, ...)."""

    _block_type_name = "Xtract fsspec Filesystem"
    _block_type_slug = "xtract-fsspec-filesystem"
    _description = "An fsspec protocol and its storage options for the 'fsspec' habitat."

    protocol: str = Field(default="file", description="fsspec protocol, e.g. 's3', 'gcs', 'sftp', 'memory', 'file'.")
    storage_options: dict[str, Any] = Field(
        default_factory=dict, description="Options for fsspec.filesystem(protocol, **options), e.g. endpoint_url."
    )
    secret_options: dict[str, SecretStr] = Field(
        default_factory=dict, description="Secret storage options (key, secret, token, password), merged in at use."
    )

    def filesystem(self) -> Any:
        """The fsspec filesystem; fails with the missing package named when the protocol is not installed."""
        import fsspec

        options = {**self.storage_options, **{k: v.get_secret_value() for k, v in self.secret_options.items()}}
        try:
            return fsspec.filesystem(self.protocol, **options)
        except ImportError as exc:
            raise CredentialsError(f"fsspec protocol {self.protocol!r} needs a package that is not installed: "
                                   f"{exc.name or exc}") from None
        except ValueError as exc:
            raise CredentialsError(f"unknown fsspec protocol {self.protocol!r}: {exc}") from None
