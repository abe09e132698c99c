"""Globus credentials: a confidential client or stored native-app refresh tokens."""

from __future__ import annotations

from typing import Any, Literal

from prefect.blocks.abstract import CredentialsBlock
from pydantic import Field, SecretStr


class CredentialsError(Exception):
    """A credential is missing, incomplete or rejected; never carries the secret."""


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
    scopes: list[str] = Field(default_factory=list, description="Extra scopes to request beyond the defaults.")
    environment: Literal["production", "sandbox", "preview", "test"] = Field(
        default="production", description="Globus environment (GLOBUS_SDK_ENVIRONMENT)."
    )

    def get_client(self, *args: Any, **kwargs: Any) -> Any:
        """Credentials-block protocol: the Transfer client is the primary client."""
        return self.get_transfer_client()

    def get_transfer_client(self) -> Any:
        raise CredentialsError("Globus Transfer is not configured in this build")
