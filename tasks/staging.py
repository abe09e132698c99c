"""Staging: extract files of a Globus collection that has no compute next to it.

Extractors need local bytes. When the data collection has no Globus Compute
endpoint, each batch of groups is first copied by one Globus transfer (the helper
in tasks/transfer.py) from the data collection to a staging directory on the
collection that exposes this machine, extracted there by the ordinary pool, then
the results are rewritten to name the original collection paths and the staged
copies are deleted. ``StagingPool`` wraps any ExtractionPool with that, so the
xtract stage (batching, retries, watchdog) is unchanged; staging runs in a few
threads so transfers overlap extraction.
"""

from __future__ import annotations

import os
import shutil
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

from tasks.executors import EXECUTORS, ExecutorSpec, ExtractionPool
from tasks.transfer import to_endpoint_path, transfer_and_wait
from xtract_blocks.credentials import GlobusCredentials


@dataclass
class StagingConfig:
    """Where data comes from and where it is staged; the credentials never leave this process."""

    credentials: GlobusCredentials
    source_ep: str
    local_ep: str
    staging_dir: str
    local_ep_root: str = "/"
    timeout_s: float = 3600.0
    poll_interval_s: float = 2.0
    fault_timeout_s: float | None = 600.0
    parallel: int = 2

    def __repr__(self) -> str:  # keep the credentials out of any log line
        return (f"StagingConfig(source_ep={self.source_ep!r}, local_ep={self.local_ep!r}, "
                f"staging_dir={self.staging_dir!r})")


def unstage(value: Any, batch_root: str) -> Any:
    """Replace the staged prefix in every string of a result, so metadata names the original paths."""
    if isinstance(value, str):
        return value.replace(batch_root, "") if batch_root in value else value
    if isinstance(value, dict):
        return {k: unstage(v, batch_root) for k, v in value.items()}
    if isinstance(value, list):
        return [unstage(v, batch_root) for v in value]
    return value


class StagingPool(ExtractionPool):
    """An ExtractionPool whose batches are staged by Globus transfer before the inner pool runs them."""

    #: Workers see only staged copies, so group documents come back to be rewritten and written here.
    shares_disk = False

    def __init__(self, inner: ExtractionPool, config: StagingConfig) -> None:
        self.inner = inner
        self.spec = inner.spec
        self.config = config
        os.makedirs(config.staging_dir, exist_ok=True)
        self._stagers = ThreadPoolExecutor(max_workers=max(1, config.parallel), thread_name_prefix="globus-stage")
        self.batches_staged = 0

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future[Any]:
        outer: Future[Any] = Future()
        outer.set_running_or_notify_cancel()
        self._stagers.submit(self._run, outer, fn, args, kwargs)
        return outer

    def _run(self, outer: Future[Any], fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        groups: list[dict[str, Any]] = args[0]
        cfg = self.config
        batch_root = os.path.join(os.path.realpath(cfg.staging_dir), uuid.uuid4().hex)
        try:
            staged = []
            items = []
            for g in groups:
                files = []
                for f in g["files"]:
                    local = batch_root + f["path"]
                    items.append((f["path"], to_endpoint_path(local, cfg.local_ep_root), False))
                    files.append({**f, "path": local})
                staged.append({**g, "files": files})
            os.makedirs(batch_root, exist_ok=True)
            client = cfg.credentials.get_transfer_client()
            transfer_and_wait(client, cfg.source_ep, cfg.local_ep, items, label=f"prefect-xtract staging {len(items)}",
                              timeout_s=cfg.timeout_s, poll_interval_s=cfg.poll_interval_s,
                              fault_timeout_s=cfg.fault_timeout_s)
            self.batches_staged += 1
            results = self.inner.submit(fn, staged, *args[1:], **{**kwargs, "out_dir": None}).result()
            outer.set_result(unstage(results, batch_root))
        except BaseException as exc:  # noqa: BLE001 - the xtract stage retries, splits, then records the batch
            outer.set_exception(exc)
        finally:
            shutil.rmtree(batch_root, ignore_errors=True)

    def kill(self) -> None:
        self.inner.kill()

    def restart(self) -> None:
        self.inner.restart()

    def close(self) -> None:
        self._stagers.shutdown(wait=True, cancel_futures=True)
        self.inner.close()
        try:
            os.rmdir(self.config.staging_dir)  # only when empty: never remove what we did not stage
        except OSError:
            pass


def staging_pool(spec: ExecutorSpec) -> StagingPool:
    """EXECUTORS factory: ``options={'inner': kind, 'staging': StagingConfig}``."""
    options = dict(spec.options or {})
    config = options.pop("staging", None)
    if not isinstance(config, StagingConfig):
        raise ValueError("the globus-staging executor needs options['staging'] = StagingConfig(...)")
    inner_kind = options.pop("inner", "local")
    inner = EXECUTORS[inner_kind](replace(spec, kind=inner_kind, options=options or None))
    return StagingPool(inner, config)
