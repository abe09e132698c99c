"""Crawl stage: stream an endpoint's files into a spool, batch by batch.

The endpoint's habitat supplies the crawler (tasks/habitats/); this stage only writes
its batches to the Parquet spool, reports progress and logs what could not be listed.
"""

from __future__ import annotations

from collections.abc import Callable

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from tasks.habitats import habitat_for
from tasks.habitats.base import Crawler, CrawlStatus
from tasks.observers import crawl_fields, crawl_observer, notify
from tasks.store.crawl_spool import crawl_spool_totals
from tasks.store.records import CRAWL_SCHEMA, SpoolWriter, crawl_batch
from xtract_blocks import XtractEndpoint


def get_crawler(endpoint: XtractEndpoint) -> Crawler:
    """The crawler the endpoint's habitat gives for its dirs."""
    return habitat_for(endpoint).crawler(endpoint)


def crawl_to_spool(crawler: Crawler, dirs: list[str], spool_path: str, *, batch_size: int = 10_000,
                   on_batch: Callable[[CrawlStatus], None] | None = None) -> CrawlStatus:
    """Stream a crawl into a Parquet spool; the listing is never held whole."""
    columns = getattr(crawler, "iter_columns", None)
    with SpoolWriter(spool_path, CRAWL_SCHEMA) as spool:
        if columns is not None:  # the fast path: column lists, converted and written here
            # Inline, not on a writer thread: with a helper walker process doing half the listing,
            # a second thread here only fights the walk for the GIL (measured: 0.30 s vs 0.36 s at 100k).
            ep = getattr(crawler, "endpoint_id", "local")
            for cols in columns(dirs, batch_size=batch_size):
                spool.write_batch(crawl_batch(*cols, ep))
                if on_batch is not None:
                    on_batch(crawler.status)
        else:
            for batch in crawler.iter_batches(dirs, batch_size=batch_size):
                spool.write_rows(batch)
                if on_batch is not None:
                    on_batch(crawler.status)
    return crawler.status


@task(name="crawl", cache_policy=NO_CACHE, task_run_name="crawl-{endpoint_name}")
def crawl(endpoint: XtractEndpoint, spool_path: str, *, endpoint_name: str = "endpoint",
          batch_size: int = 10_000) -> CrawlStatus:
    """Crawl the endpoint's dirs into ``spool_path``; returns the crawl status."""
    logger = get_run_logger()
    crawler = get_crawler(endpoint)
    notify("crawl", endpoint_name, "start", dirs=list(endpoint.dirs))
    status = crawl_to_spool(crawler, list(endpoint.dirs), spool_path, batch_size=batch_size,
                            on_batch=crawl_observer(endpoint_name))
    notify("crawl", endpoint_name, "end", **crawl_fields(status), seconds=status.seconds)
    logger.info("crawled %d files (%d bytes) in %d dirs in %.1fs; %d dirs unreadable",
                status.files, status.bytes, status.dirs, status.seconds, status.dirs_failed)
    for err in status.errors[:20]:
        logger.warning("could not list %s: %s", err["path"], err["error"])
    return status


def recorded_crawl(spool_path: str) -> CrawlStatus:
    """The totals of an earlier crawl, from its spool (the seed's xtract() after crawl())."""
    return CrawlStatus(**crawl_spool_totals(spool_path))
