"""Habitats: where an endpoint's files live (repo_type), one module each, behind one protocol.

``habitat_for(ep)`` is the only way the rest of the project learns what an endpoint's
repo_type means. Built-in: local, globus, https, fsspec. Third parties add one through
the ``xtract.habitats`` entry point (name = repo_type, value = a Habitat class or
instance; see docs/architecture.md).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import cache
from importlib.metadata import entry_points
from typing import Any

from tasks.habitats.base import Habitat, RunNeeds
from tasks.habitats.download import DownloadReport, Item, fetch_many, scheme_fetcher
from tasks.habitats.fsspec import FsspecHabitat
from tasks.habitats.globus import GlobusHabitat, check_globus_destinations
from tasks.habitats.https import HttpsHabitat
from tasks.habitats.local import LocalHabitat
from xtract_blocks import XtractEndpoint
from xtract_blocks.errors import ConfigurationError

__all__ = ["HABITATS", "Habitat", "RunNeeds", "download_files", "habitat_for", "validate_endpoint"]

log = logging.getLogger(__name__)

#: repo_type -> habitat (built in)
HABITATS: dict[str, Habitat] = {h.repo_type: h for h in (LocalHabitat(), GlobusHabitat(), HttpsHabitat(),
                                                         FsspecHabitat())}


@cache
def plugin_habitats() -> dict[str, Habitat]:
    """Habitats other packages register under the ``xtract.habitats`` entry point (loaded once)."""
    found: dict[str, Habitat] = {}
    for ep in entry_points(group="xtract.habitats"):
        try:
            value = ep.load()
        except Exception as exc:  # noqa: BLE001 - a broken plugin must not stop the built-in habitats
            log.warning("could not load habitat plugin %s: %s", ep.name, exc)
            continue
        found[ep.name.lower()] = value() if isinstance(value, type) else value
    return found


def habitat_for(ep: XtractEndpoint) -> Habitat:
    key = ep.repo_type.lower()
    habitat = HABITATS.get(key) or plugin_habitats().get(key)
    if habitat is None:
        known = sorted({*HABITATS, *plugin_habitats()})
        raise ConfigurationError(f"XtractEndpoint.repo_type {ep.repo_type!r} is not a known habitat; known: {known}")
    return habitat


def validate_endpoint(ep: XtractEndpoint, needs: RunNeeds, *, dest_endpoint_id: str | None = None,
                      search_index_id: str | None = None) -> None:
    """Everything a run will ask of the endpoint, checked before any work (ConfigurationError names the field)."""
    habitat_for(ep).validate(ep, needs)
    check_globus_destinations(ep, dest_endpoint_id=dest_endpoint_id, search_index_id=search_index_id)


def download_files(items: list[Item], dest: str, *, endpoint: XtractEndpoint | None = None,
                   **options: Any) -> DownloadReport:
    """Fetch files to ``dest``: through the endpoint's habitat when given, else by each path's scheme."""
    items = list(items)
    if endpoint is not None:
        return habitat_for(endpoint).download(endpoint, items, dest, **options)
    fetcher_for: Callable[[str], Any] = scheme_fetcher
    return fetch_many(items, dest, fetcher_for, **options)
