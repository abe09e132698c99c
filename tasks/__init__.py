"""Prefect tasks, one module per stage: crawl, group, containers, xtract, sink, offload."""

import xtract_blocks._defaults  # noqa: F401  (must run before prefect is imported)
