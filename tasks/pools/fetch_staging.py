"""Staging for the 'https' and 'fsspec' habitats: extractors need local bytes.

Each batch of groups is downloaded (tasks/habitats/download.py fetchers, resumable and
checksummed) into its own directory under the staging dir, run by the ordinary
pool on those copies, and the results are rewritten to name the original URLs
before the copies are deleted. Like the Globus ``StagingPool`` this wraps any
ExtractionPool, so the xtract stage (batching, retries, watchdog) is unchanged,
and a few staging threads overlap downloads with extraction. A failed download
fails the batch, which the xtract stage retries, splits, then records as an
error naming the URL.
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any
from urllib.parse import unquote, urlsplit

from tasks.habitats.download import FetchStagingConfig
from tasks.pools.base import ExtractionPool, WrappingPool
from tasks.pools.staged import staged_file


def unstage(value: Any, pattern: re.Pattern[str], originals: dict[str, str]) -> Any:
    """Every staged path inside ``value`` (keys and strings, also inside messages) back to its original."""
    if isinstance(value, str):
        return pattern.sub(lambda m: originals[m.group(0)], value)
    if isinstance(value, dict):
        return {unstage(k, pattern, originals): unstage(v, pattern, originals) for k, v in value.items()}
    if isinstance(value, list):
        return [unstage(v, pattern, originals) for v in value]
    return value


class FetchStagingPool(WrappingPool):
    """An ExtractionPool whose batches are downloaded to local copies before the inner pool runs them."""

    def __init__(self, inner: ExtractionPool, config: FetchStagingConfig) -> None:
        super().__init__(inner)
        self.config = config
        os.makedirs(config.staging_dir, exist_ok=True)
        self._stagers = ThreadPoolExecutor(max_workers=max(1, config.parallel), thread_name_prefix="fetch-stage")
        self._fetchers: dict[str, Any] = {}
        self.batches_staged = 0

    def _fetcher(self, remote: str) -> Any:
        key = urlsplit(remote).scheme
        if key not in self._fetchers:
            self._fetchers[key] = self.config.fetcher_for(remote)
        return self._fetchers[key]

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future[Any]:
        outer: Future[Any] = Future()
        outer.set_running_or_notify_cancel()
        self._stagers.submit(self._run, outer, fn, args, kwargs)
        return outer

    def _run(self, outer: Future[Any], fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        groups: list[dict[str, Any]] = args[0]
        batch_root = os.path.join(os.path.realpath(self.config.staging_dir), uuid.uuid4().hex)
        originals: dict[str, str] = {}
        try:
            staged = []
            for gi, g in enumerate(groups):
                files = []
                for fi, f in enumerate(g["files"]):
                    name = unquote(urlsplit(f["path"]).path.rsplit("/", 1)[-1]) or "file"
                    local = os.path.join(batch_root, f"{gi}-{fi}", name)  # the name keeps its extension
                    os.makedirs(os.path.dirname(local))
                    self._fetcher(f["path"]).fetch(f["path"], local, mtime=f.get("mtime") or None)
                    originals[local] = f["path"]
                    files.append(staged_file(f, local))
                staged.append({**g, "files": files})
            self.batches_staged += 1
            results = self.inner.submit(fn, staged, *args[1:], **{**kwargs, "out_dir": None}).result()
            pattern = re.compile("|".join(re.escape(p) for p in sorted(originals, key=len, reverse=True)))
            results = unstage(results, pattern, originals) if originals else results
            for res in results:
                if res.get("doc") is not None:
                    res["doc"]["habitat"] = self.config.habitat
            outer.set_result(results)
        except BaseException as exc:  # noqa: BLE001 - the xtract stage retries, splits, then records the batch
            outer.set_exception(exc)
        finally:
            shutil.rmtree(batch_root, ignore_errors=True)

    def close(self) -> None:
        self._stagers.shutdown(wait=True, cancel_futures=True)
        self.inner.close()
        shutil.rmtree(self.config.staging_dir, ignore_errors=True)
