"""The built-in extractor list, in one place so dispatch and docs agree."""

from __future__ import annotations

from extractors.base import Extractor
from extractors.physical import PHYSICAL
from extractors.tabular import TABULAR

BUILTINS: tuple[Extractor, ...] = (TABULAR, PHYSICAL)
