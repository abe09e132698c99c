"""Staging: extract files of a Globus collection that has no compute next to it.

Extractors need bytes on a disk they can read. When the data collection has no
compute of its own, each batch of groups is first copied by one Globus transfer
(the helper in tasks/habitats/globus_transfer.py) from the data collection to a staging directory
on a collection the extraction workers can read, extracted there by the ordinary
pool, then the results are rewritten to name the original collection paths and the
staged copies are deleted. ``StagingPool`` wraps any ExtractionPool with that, so
the xtract stage (batching, retries, watchdog) is unchanged. Two targets:

- this machine (``remote=False``): the collection exposing the local disk; copies
  are deleted locally;
- a Globus Compute endpoint (``remote=True``): its collection; ``staging_dir`` is
  where the endpoint's workers see the copies, and copies are deleted with
  DeleteData, since this process cannot touch that disk.

Transfers run in their own threads and do not wait for extraction: while the
inner pool extracts staged batches, the next ones are staged (prefetch). What is
staged and not yet deleted is bounded by ``max_staged`` batches and ``max_bytes``
(a batch over the byte cap is cut into staging rounds; one group larger than the
cap is staged alone, when nothing else is).
"""

from __future__ import annotations

import logging
import os
import posixpath
import shutil
import threading
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from tasks.habitats.globus_transfer import StagingConfig, delete_and_wait, transfer_and_wait
from tasks.pools.base import ExtractionPool, WrappingPool
from tasks.pools.staged import staged_file

log = logging.getLogger(__name__)


def unstage(value: Any, batch_root: str) -> Any:
    """Replace the staged prefix in every string of a result, so metadata names the original paths."""
    if isinstance(value, str):
        return value.replace(batch_root, "") if batch_root in value else value
    if isinstance(value, dict):
        return {k: unstage(v, batch_root) for k, v in value.items()}
    if isinstance(value, list):
        return [unstage(v, batch_root) for v in value]
    return value


def group_bytes(group: dict[str, Any]) -> int:
    return sum(int(f.get("size") or 0) for f in group["files"])


@dataclass
class StagingStats:
    """What staging did, for tests and benchmarks: rounds, bytes, peaks and the (start, end) of each phase."""

    rounds: int = 0
    bytes_staged: int = 0
    peak_bytes: int = 0
    peak_batches: int = 0
    cleanup_failures: int = 0
    staging: list[tuple[float, float]] = field(default_factory=list)
    extracting: list[tuple[float, float]] = field(default_factory=list)

    def overlap_s(self) -> float:
        """Seconds during which some batch was being staged while another was being extracted."""
        total = 0.0
        for s0, s1 in self.staging:
            for e0, e1 in self.extracting:
                total += max(0.0, min(s1, e1) - max(s0, e0))
        return total


class _Budget:
    """Batches and bytes staged and not yet deleted; staging waits here when either bound is reached."""

    def __init__(self, max_bytes: int | None, max_batches: int, stats: StagingStats) -> None:
        self.max_bytes = max_bytes
        self.max_batches = max(1, max_batches)
        self.stats = stats
        self.bytes = 0
        self.batches = 0
        self._cond = threading.Condition()

    def _fits(self, n: int) -> bool:
        if self.batches == 0:  # alone, anything goes: a group larger than the cap must still run
            return True
        return self.batches < self.max_batches and (self.max_bytes is None or self.bytes + n <= self.max_bytes)

    def acquire(self, n: int) -> None:
        with self._cond:
            self._cond.wait_for(lambda: self._fits(n))
            self.bytes += n
            self.batches += 1
            self.stats.peak_bytes = max(self.stats.peak_bytes, self.bytes)
            self.stats.peak_batches = max(self.stats.peak_batches, self.batches)

    def release(self, n: int) -> None:
        with self._cond:
            self.bytes -= n
            self.batches -= 1
            self._cond.notify_all()


class _Gather:
    """The staging rounds of one submitted batch, gathered into the one future the xtract stage waits on."""

    def __init__(self, parts: int) -> None:
        self.outer: Future[Any] = Future()
        self.outer.set_running_or_notify_cancel()
        self.pending = parts
        self.results: list[Any] = []
        self.lock = threading.Lock()

    def done(self, results: list[Any] | None, exc: BaseException | None) -> None:
        with self.lock:
            if self.outer.done():
                return
            if exc is not None:
                self.outer.set_exception(exc)
                return
            self.results.extend(results or [])
            self.pending -= 1
            if self.pending == 0:
                self.outer.set_result(self.results)


class StagingPool(WrappingPool):
    """An ExtractionPool whose batches are staged by Globus transfer before the inner pool runs them."""

    #: Workers see only staged copies, so group documents come back to be rewritten and written here.
    def __init__(self, inner: ExtractionPool, config: StagingConfig) -> None:
        super().__init__(inner)
        self.config = config
        if not config.remote:
            os.makedirs(config.staging_dir, exist_ok=True)
        self.stats = StagingStats()
        self._stats_lock = threading.Lock()
        self._budget = _Budget(config.max_bytes, config.max_staged or config.parallel, self.stats)
        self._stagers = ThreadPoolExecutor(max_workers=max(1, config.parallel), thread_name_prefix="globus-stage")
        self._cleaners = ThreadPoolExecutor(max_workers=2, thread_name_prefix="globus-unstage")

    @property
    def batches_staged(self) -> int:
        return self.stats.rounds

    def _rounds(self, groups: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
        """Cut a batch into staging rounds of at most cap / max_staged bytes, so a round can be staged
        ahead while others are extracted (a round the size of the cap would leave room for nothing else)."""
        if self.config.max_bytes is None:
            return [groups]
        cap = max(1, self.config.max_bytes // self._budget.max_batches)
        rounds: list[list[dict[str, Any]]] = []
        cur: list[dict[str, Any]] = []
        size = 0
        for g in groups:
            n = group_bytes(g)
            if cur and size + n > cap:
                rounds.append(cur)
                cur, size = [], 0
            cur.append(g)
            size += n
        if cur:
            rounds.append(cur)
        return rounds

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future[Any]:
        rounds = self._rounds(args[0])
        gather = _Gather(len(rounds))
        for part in rounds:
            self._stagers.submit(self._stage, gather, part, fn, args[1:], kwargs)
        return gather.outer

    def _stage(self, gather: _Gather, groups: list[dict[str, Any]], fn: Any, rest: tuple[Any, ...],
               kwargs: dict[str, Any]) -> None:
        """Wait for room, transfer one round, hand it to the inner pool; extraction finishes in a callback."""
        if gather.outer.done():  # a sibling round already failed the batch
            return
        cfg = self.config
        nbytes = sum(group_bytes(g) for g in groups)
        self._budget.acquire(nbytes)
        root = cfg.staging_dir if cfg.remote else os.path.realpath(cfg.staging_dir)
        batch_root = posixpath.join(root, uuid.uuid4().hex) if cfg.remote else os.path.join(root, uuid.uuid4().hex)
        started = time.monotonic()
        try:
            staged, items = [], []
            for g in groups:
                files = []
                for f in g["files"]:
                    copy = batch_root + f["path"]
                    items.append((f["path"], cfg.collection_path(copy), False))
                    files.append(staged_file(f, copy))
                staged.append({**g, "files": files})
            if not cfg.remote:
                os.makedirs(batch_root, exist_ok=True)
            transfer_and_wait(cfg.credentials.get_transfer_client(), cfg.source_ep, cfg.local_ep, items,
                              label=f"prefect-xtract staging {len(items)}", timeout_s=cfg.timeout_s,
                              poll_interval_s=cfg.poll_interval_s, fault_timeout_s=cfg.fault_timeout_s)
            staged_at = time.monotonic()
            with self._stats_lock:
                self.stats.staging.append((started, staged_at))
                self.stats.rounds += 1
                self.stats.bytes_staged += nbytes
            inner = self.inner.submit(fn, staged, *rest, **{**kwargs, "out_dir": None})
        except BaseException as exc:  # noqa: BLE001 - the xtract stage retries, splits, then records the batch
            self._finish(gather, batch_root, nbytes, None, exc)
            return
        inner.add_done_callback(partial(self._extracted, gather, batch_root, nbytes, staged_at))

    def _extracted(self, gather: _Gather, batch_root: str, nbytes: int, staged_at: float, fut: Future[Any]) -> None:
        """Runs in the inner pool's thread: hand cleanup (which may wait for a transfer) to our own threads."""
        with self._stats_lock:
            self.stats.extracting.append((staged_at, time.monotonic()))
        try:
            self._cleaners.submit(self._finish, gather, batch_root, nbytes, fut, None)
        except RuntimeError:  # shutting down: clean up here
            self._finish(gather, batch_root, nbytes, fut, None)

    def _finish(self, gather: _Gather, batch_root: str, nbytes: int, fut: Future[Any] | None,
                exc: BaseException | None) -> None:
        """Delete the staged copies, free their room, then complete the round with original paths."""
        results = None
        if fut is not None:
            try:
                results = unstage(fut.result(), batch_root)
            except BaseException as err:  # noqa: BLE001 - a lost or failed batch; the xtract stage retries it
                exc = err
        try:
            self._delete(batch_root)
        except Exception as err:  # noqa: BLE001 - the metadata is right; leftover copies are reported
            with self._stats_lock:
                self.stats.cleanup_failures += 1
            log.warning("staged copies under %s were not deleted: %s", batch_root, type(err).__name__)
        finally:
            self._budget.release(nbytes)
        gather.done(results, exc)

    def _delete(self, batch_root: str) -> None:
        cfg = self.config
        if not cfg.remote:
            shutil.rmtree(batch_root, ignore_errors=True)
            return
        delete_and_wait(cfg.credentials.get_transfer_client(), cfg.local_ep, [cfg.collection_path(batch_root)],
                        recursive=True, label="prefect-xtract unstage", timeout_s=cfg.timeout_s,
                        poll_interval_s=cfg.poll_interval_s, fault_timeout_s=cfg.fault_timeout_s,
                        ignore_missing=True)

    def close(self) -> None:
        self._stagers.shutdown(wait=True, cancel_futures=True)
        self.inner.close()
        self._cleaners.shutdown(wait=True)
        if not self.config.remote:
            try:
                os.rmdir(self.config.staging_dir)  # only when empty: never remove what we did not stage
            except OSError:
                pass
