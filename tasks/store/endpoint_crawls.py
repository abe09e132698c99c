"""Which crawl of an endpoint an extraction reads, and how many crawls' spools are kept.

Several crawls of one endpoint may be requested at once (the seed's README crawls, then
crawls again with ``crawl_and_wait``); they take the metadata directory's lock one after
the other in no particular order. Each writes its own spools, and ``crawl-id`` names the
latest crawl by *request* time (the flow run's creation), so a crawl that happened to run
last does not pass for the newest. An extraction started for a crawl id reads that crawl.
"""

from __future__ import annotations

import os
import shutil

from tasks.store.layout import EndpointState
from xtract_blocks.errors import ConfigurationError


def latest_crawl(state: EndpointState) -> tuple[str, float] | None:
    """(crawl id, requested-at epoch seconds) of the endpoint's latest crawl, or None."""
    try:
        with open(state.crawl_id, encoding="utf-8") as fh:
            text = fh.read().split()
    except FileNotFoundError:
        return None
    if not text:
        return None
    return text[0], float(text[1]) if len(text) > 1 else 0.0


def record_crawl(state: EndpointState, crawl_id: str, requested_at: float) -> bool:
    """Name ``crawl_id`` the latest unless a crawl requested later already is; returns whether it now is."""
    held = latest_crawl(state)
    if held is not None and held[0] != crawl_id and held[1] > requested_at:
        return False
    os.makedirs(state.root, exist_ok=True)
    tmp = f"{state.crawl_id}.partial"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(f"{crawl_id} {requested_at!r}\n")
    os.replace(tmp, state.crawl_id)
    return True


def crawl_to_extract(state: EndpointState, crawl_id: str | None) -> str:
    """The crawl an extraction reads: ``crawl_id`` when given (its spools must still be here), else the latest."""
    if crawl_id is None:
        held = latest_crawl(state)
        if held is None:
            raise ConfigurationError(f"no crawl of this endpoint is recorded in {state.root}: crawl it first")
        crawl_id = held[0]
    if not os.path.isfile(state.groups_spool(crawl_id)):
        raise ConfigurationError(f"the spools of crawl {crawl_id} are gone from {state.root} (a crawl keeps only "
                                 "the newest few): crawl again")
    return crawl_id


def prune_crawls(state: EndpointState, *, keep: int = 2) -> list[str]:
    """Remove the spools of all but the ``keep`` most recently written crawls (never the latest); returns their ids."""
    try:
        ids = os.listdir(state.crawls)
    except FileNotFoundError:
        return []
    latest = latest_crawl(state)
    ids.sort(key=lambda c: os.path.getmtime(state.crawl_dir(c)), reverse=True)
    removed = [c for c in ids[keep:] if latest is None or c != latest[0]]
    for c in removed:
        shutil.rmtree(state.crawl_dir(c), ignore_errors=True)
    return removed
