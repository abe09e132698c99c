"""Prefect blocks of prefect-xtract (``prefect block register -m xtract_blocks``)."""

import xtract_blocks._defaults  # noqa: F401  (must run before prefect is imported)
from xtract_blocks.compute import ComputeFunctionRegistry, GlobusComputeSettings
from xtract_blocks.credentials import CredentialsError, GlobusCredentials
from xtract_blocks.endpoint import XtractEndpoint
from xtract_blocks.http import FsspecFilesystem, HttpCredentials

__all__ = [
    "ComputeFunctionRegistry", "CredentialsError", "GlobusComputeSettings", "GlobusCredentials", "XtractEndpoint",
    "FsspecFilesystem", "HttpCredentials",
]
