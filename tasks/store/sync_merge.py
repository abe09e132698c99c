"""Keeping a derived store (search index, facts) in step with the journal: the merge, the chunks, the pipeline.

Both derived stores record which version (fingerprint, run) of each group they hold; a sync
merge-joins that with the journal, both ordered by group_id, so only changed groups are read
again and groups that left are dropped. Reading group files (Python, holding the GIL) overlaps
with writing the previous chunk (SQLite or Parquet, which release it) in ``pipelined``.
"""

from __future__ import annotations

import gc
import sys
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

#: Groups per chunk (and per transaction of an incremental sync).
APPLY_EVERY = 500
#: Groups per chunk of a first build (no transaction per chunk there): fewer round trips to SQLite.
BULK_CHUNK = 2_000
#: The GIL switch interval while ``pipelined`` runs (Python's default is 5 ms).
SWITCH_INTERVAL_S = 0.0005
#: The cyclic collector's first threshold while ``pipelined`` runs (Python's default is 700 allocations).
GC_THRESHOLD0 = 50_000
T = TypeVar("T")
P = TypeVar("P")
Reindex = list[tuple[str, str, str, bool]]  # (group_id, fingerprint, run_id, new)


def merge(journal: Iterator[tuple[str, str, str, str]],
          mine: Iterable[tuple[str, str, str]]) -> Iterator[tuple[str, Any]]:
    """Merge-join two group_id-ordered streams into actions: ('index', (gid, fp, run)) for a changed group,
    ('new', (gid, fp, run)) for one the store lacks, ('drop', gid) for one the journal lacks."""
    mine_it = iter(mine)
    cur = next(mine_it, None)
    for gid, fp, run_id, outcome in journal:
        while cur is not None and cur[0] < gid:
            yield "drop", cur[0]
            cur = next(mine_it, None)
        if cur is not None and cur[0] == gid:
            _, my_fp, my_run = cur
            cur = next(mine_it, None)
            if my_fp == fp and (outcome != "done" or my_run == run_id):
                continue  # unchanged, or skipped by a run after the one we indexed
            yield "index", (gid, fp, run_id)
        else:
            yield "new", (gid, fp, run_id)
    while cur is not None:
        yield "drop", cur[0]
        cur = next(mine_it, None)


def chunked(actions: Iterator[tuple[str, Any]], size: int = APPLY_EVERY) -> Iterator[tuple[Reindex, list[str]]]:
    """(reindex, drop) lists of at most ``size`` groups from ``merge``'s actions."""
    reindex: Reindex = []
    drop: list[str] = []
    for action, item in actions:
        if action == "drop":
            drop.append(item)
        else:
            reindex.append((*item, action == "new"))
        if len(reindex) + len(drop) >= size:
            yield reindex, drop
            reindex, drop = [], []
    if reindex or drop:
        yield reindex, drop


def pipelined(jobs: Iterable[T], prepare: Callable[[T], P], write: Callable[[P], None]) -> None:
    """write(prepare(job)) for each job in order, preparing the next job in a helper thread meanwhile.

    The writer mostly waits in SQLite or Arrow without the GIL; each time it returns it needs the
    GIL back from the preparing thread, which by default yields it only every 5 ms. A shorter
    switch interval while both run keeps the writer from queueing behind it (measured with
    py-spy: ~10 % of a build's time was the writer waiting to return from SQLite).

    Parsed documents are trees of dicts and lists with no cycles, made and dropped by the million:
    at the default threshold the cyclic collector runs every 700 of them and took ~45 % of the
    parsing time (bench/search.py, 200k records); a higher threshold while both run keeps it rare
    (reference counting frees the documents either way).
    """
    interval = sys.getswitchinterval()
    thresholds = gc.get_threshold()
    sys.setswitchinterval(min(interval, SWITCH_INTERVAL_S))
    gc.set_threshold(max(thresholds[0], GC_THRESHOLD0), *thresholds[1:])
    try:
        with ThreadPoolExecutor(1, thread_name_prefix="store-prepare") as pool:
            ahead: Future[P] | None = None
            for job in jobs:
                nxt = pool.submit(prepare, job)
                if ahead is not None:
                    write(ahead.result())
                ahead = nxt
            if ahead is not None:
                write(ahead.result())
    finally:
        sys.setswitchinterval(interval)
        gc.set_threshold(*thresholds)
