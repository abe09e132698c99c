"""Globus credentials: a confidential client or stored native-app refresh tokens.

Flows run headless (workers, schedules), so nothing here may ever start an
interactive login: a confidential client gets tokens by the client-credentials
grant (``globus_sdk.ClientApp``), a native app by its stored refresh tokens
(``RefreshTokenAuthorizer``). Anything missing or rejected fails fast with a
``CredentialsError`` that names the client id and the resource server, never the
secret. Tokens obtained at run time live only in memory (``MemoryTokenStorage``).

The service URLs come from globus-sdk's own configuration
(``GLOBUS_SDK_ENVIRONMENT``, ``GLOBUS_SDK_SERVICE_URL_<SERVICE>``), which is how
tests point this very code at a loopback service.
"""

from __future__ import annotations

import threading
from typing import Any, Literal

import globus_sdk
from globus_sdk.scopes import AuthScopes, ComputeScopes, SearchScopes, TransferScopes
from globus_sdk.transport import RetryConfig
from prefect.blocks.abstract import CredentialsBlock
from pydantic import Field, PrivateAttr, SecretStr, field_validator

from xtract_blocks.errors import CredentialsError

TRANSFER_RS = TransferScopes.resource_server
SEARCH_RS = SearchScopes.resource_server
COMPUTE_RS = ComputeScopes.resource_server
#: The scope each resource server needs by default.
DEFAULT_SCOPES: dict[str, str] = {
    TRANSFER_RS: str(TransferScopes.all),
    SEARCH_RS: str(SearchScopes.all),
    COMPUTE_RS: str(ComputeScopes.all),
}
#: xtract-sdk's short scope names (its XtractClient(auth_scopes=...)) -> full Globus scopes.
SHORT_SCOPES: dict[str, str] = {
    "transfer": str(TransferScopes.all),
    "search": str(SearchScopes.all),
    "search_ingest": str(SearchScopes.all),
    "funcx_scope": str(ComputeScopes.all),
    "compute": str(ComputeScopes.all),
    "petrel": "https://auth.globus.org/scopes/56ceac29-e98a-440a-a594-b41e7a084b62/all",
    "openid": str(AuthScopes.openid),
    "email": str(AuthScopes.email),
    "profile": str(AuthScopes.profile),
}
#: Scopes Globus Auth itself serves (OpenID Connect), named without a resource server.
_AUTH_SCOPES = {"openid", "email", "profile"}


def full_scope(scope: str) -> str:
    """A full scope string for one of the seed's short names; any other scope unchanged."""
    return SHORT_SCOPES.get(scope.strip(), scope.strip())


class GlobusCredentials(CredentialsBlock):
    """Credentials for Globus Transfer, Search and Compute.

    Headless flows must never start an interactive login, so a confidential client
    (client_id + client_secret) or a stored refresh token is required.
    """

    _block_type_name = "Globus Credentials"
    _block_type_slug = "globus-credentials"
    _description = "Globus Auth credentials (confidential client or native-app refresh tokens)."

    client_id: str = Field(default="", description="Globus Auth client id.")
    client_secret: SecretStr | None = Field(
        default=None, description="Secret of a confidential client (globus_sdk.ClientApp)."
    )
    refresh_tokens: dict[str, SecretStr] = Field(
        default_factory=dict, description="Native-app refresh tokens keyed by resource server."
    )
    scopes: list[str] = Field(default_factory=list, description="Extra scopes to request beyond the defaults "
                              "(full scope strings, or xtract-sdk's short names: transfer, search, petrel, "
                              "funcx_scope, openid).")
    environment: Literal["production", "sandbox", "preview", "test"] = Field(
        default="production", description="Globus environment (GLOBUS_SDK_ENVIRONMENT)."
    )

    _app: Any = PrivateAttr(default=None)
    _authorizers: dict[str, Any] = PrivateAttr(default_factory=dict)
    _lock: Any = PrivateAttr(default_factory=threading.Lock)

    # -- how we authenticate ------------------------------------------------
    @property
    def mode(self) -> Literal["client", "native"]:
        """'client' for a confidential client, 'native' for stored refresh tokens."""
        if not self.client_id:
            raise CredentialsError("GlobusCredentials.client_id is empty: set a Globus Auth client id")
        if self.client_secret is not None and self.client_secret.get_secret_value():
            return "client"
        if self.refresh_tokens:
            return "native"
        raise CredentialsError(
            f"GlobusCredentials for client {self.client_id} has neither a client_secret nor refresh_tokens; "
            "headless runs cannot log in interactively"
        )

    @field_validator("scopes", mode="after")
    @classmethod
    def _short_names(cls, value: list[str]) -> list[str]:
        out: list[str] = []
        for scope in value:
            full = full_scope(scope)
            if full not in out:
                out.append(full)
        return out

    def _scope_requirements(self) -> dict[str, list[str]]:
        """Default scopes per resource server plus the block's extra scopes (under their own server)."""
        reqs: dict[str, list[str]] = {rs: [scope] for rs, scope in DEFAULT_SCOPES.items()}
        for scope in self.scopes:
            if scope in DEFAULT_SCOPES.values():  # already asked for, under its resource server
                continue
            rs = _resource_server_of(scope)
            if scope not in reqs.setdefault(rs, []):
                reqs[rs].append(scope)
        return reqs

    def get_app(self) -> globus_sdk.ClientApp:
        """The confidential-client ``ClientApp`` (what a Globus Compute ``Client(app=...)`` takes).

        Native-app credentials have no headless app: use ``get_authorizer`` instead.
        """
        if self.mode != "client":
            raise CredentialsError(
                f"client {self.client_id} is a native app with stored refresh tokens: use get_authorizer()"
            )
        with self._lock:
            if self._app is None:
                config = globus_sdk.GlobusAppConfig(token_storage="memory", environment=self.environment)
                self._app = globus_sdk.ClientApp(
                    "prefect-xtract",
                    client_id=self.client_id,
                    client_secret=self.client_secret.get_secret_value(),  # type: ignore[union-attr]
                    scope_requirements=self._scope_requirements(),
                    config=config,
                )
            return self._app

    def get_authorizer(self, resource_server: str = TRANSFER_RS) -> globus_sdk.authorizers.GlobusAuthorizer:
        """An authorizer for one resource server; fetches a token now, so a bad credential fails here."""
        with self._lock:
            cached = self._authorizers.get(resource_server)
        if cached is not None:
            return cached
        try:
            if self.mode == "client":
                authorizer = self.get_app().get_authorizer(resource_server)
            else:
                authorizer = self._refresh_authorizer(resource_server)
            authorizer.get_authorization_header()  # fail fast: obtain (or refresh) the token now
        except globus_sdk.GlobusAPIError as exc:
            raise CredentialsError(
                f"Globus Auth rejected client {self.client_id} for {resource_server}: "
                f"HTTP {exc.http_status} {exc.code}"
            ) from None
        except globus_sdk.GlobusSDKUsageError as exc:
            raise CredentialsError(f"client {self.client_id} cannot authorize {resource_server}: {exc}") from None
        except globus_sdk.NetworkError as exc:
            raise CredentialsError(
                f"Globus Auth unreachable while authorizing client {self.client_id}: {type(exc.exc).__name__}"
            ) from None
        with self._lock:
            self._authorizers.setdefault(resource_server, authorizer)
            return self._authorizers[resource_server]

    def _refresh_authorizer(self, resource_server: str) -> globus_sdk.RefreshTokenAuthorizer:
        token = self.refresh_tokens.get(resource_server)
        if token is None or not token.get_secret_value():
            raise CredentialsError(
                f"no refresh token for {resource_server} in GlobusCredentials of client {self.client_id}; "
                f"have: {sorted(self.refresh_tokens)}"
            )
        auth_client: globus_sdk.AuthLoginClient
        if self.client_secret is not None and self.client_secret.get_secret_value():
            auth_client = globus_sdk.ConfidentialAppAuthClient(
                self.client_id, self.client_secret.get_secret_value(), environment=self.environment
            )
        else:
            auth_client = globus_sdk.NativeAppAuthClient(self.client_id, environment=self.environment)
        return globus_sdk.RefreshTokenAuthorizer(token.get_secret_value(), auth_client)

    def check(self, *resource_servers: str) -> None:
        """Obtain tokens for the given resource servers (default Transfer) or raise CredentialsError."""
        for rs in resource_servers or (TRANSFER_RS,):
            self.get_authorizer(rs)

    # -- clients --------------------------------------------------------------
    def get_client(self, *args: Any, **kwargs: Any) -> Any:
        """Credentials-block protocol: the Transfer client is the primary client."""
        return self.get_transfer_client(**kwargs)

    def get_transfer_client(
        self, *, retry_config: RetryConfig | None = None, http_timeout: float | None = None
    ) -> globus_sdk.TransferClient:
        """A TransferClient; each call returns a new one (one per thread: requests sessions are not shared)."""
        return globus_sdk.TransferClient(
            authorizer=self.get_authorizer(TRANSFER_RS), environment=self.environment,
            retry_config=retry_config, transport=_transport(http_timeout),
        )

    def get_search_client(
        self, *, retry_config: RetryConfig | None = None, http_timeout: float | None = None
    ) -> globus_sdk.SearchClient:
        """A SearchClient for ingest and queries."""
        return globus_sdk.SearchClient(
            authorizer=self.get_authorizer(SEARCH_RS), environment=self.environment,
            retry_config=retry_config, transport=_transport(http_timeout),
        )

    def compute_client_kwargs(self) -> dict[str, Any]:
        """What ``globus_compute_sdk.Client(**kwargs)`` needs: ``app`` or ``authorizer``, never a login."""
        if self.mode == "client":
            return {"app": self.get_app()}
        return {"authorizer": self.get_authorizer(COMPUTE_RS)}


def _transport(http_timeout: float | None) -> Any:
    if http_timeout is None:
        return None
    from globus_sdk.transport import RequestsTransport

    return RequestsTransport(http_timeout=http_timeout)


def _resource_server_of(scope: str) -> str:
    """``urn:globus:auth:scope:<rs>:<name>`` -> rs; ``https://auth.globus.org/scopes/<rs>/<name>`` -> rs."""
    if scope.startswith("urn:globus:auth:scope:"):
        return scope.split(":")[4]
    if scope.startswith("https://auth.globus.org/scopes/"):
        return scope.split("/")[4]
    if scope in _AUTH_SCOPES:
        return AuthScopes.resource_server
    return scope
