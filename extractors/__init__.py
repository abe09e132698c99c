"""Prefect-free extractors: plain functions that run in any worker process.

Nothing here imports prefect or the project's other packages, so this package can
be shipped alone into a container on a remote compute endpoint.
"""

from extractors.base import Extractor, ExtractorError
from extractors.batch import run_batch

__all__ = ["Extractor", "ExtractorError", "run_batch"]
