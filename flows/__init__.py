"""Flows of prefect-xtract: one per endpoint, one over many, the CLI and the XtractClient."""

import xtract_blocks._defaults  # noqa: F401  (must run before prefect is imported)
