"""Prefect blocks of prefect-xtract (``prefect block register -m xtract_blocks``)."""

import xtract_blocks._defaults  # noqa: F401  (must run before prefect is imported)
from xtract_blocks.credentials import CredentialsError, GlobusCredentials
from xtract_blocks.endpoint import XtractEndpoint

__all__ = ["CredentialsError", "GlobusCredentials", "XtractEndpoint"]
