"""Several endpoints at once: one ``xtract-endpoint`` subflow per endpoint, concurrently.

Subflows run in threads, each in a copy of the parent's context so the Prefect UI
shows them under this run; the machine's workers are shared out between them.
"""

from __future__ import annotations

import contextvars
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from prefect import flow, get_run_logger
from prefect.states import Completed, Failed

from flows.endpoint_flow import xtract_endpoint
from tasks.artifacts import artifact_key
from tasks.offload import offload, one_source_per_directory
from tasks.pools.options import ExtractionOptions
from xtract_blocks import XtractEndpoint
from xtract_blocks.errors import ConfigurationError


@flow(name="xtract")
def xtract(
    endpoints: list[XtractEndpoint | str],
    extraction: ExtractionOptions | None = None,
    dest_path: str | None = None,
) -> Any:
    """Extract metadata from every endpoint concurrently; optionally offload all of it together.

    Args:
        endpoints: XtractEndpoint blocks or names of saved ones.
        extraction: where and how extractors run; its ``workers`` (total local worker processes) are shared
            out between the endpoints.
        dest_path: when set, every endpoint's metadata is copied under dest_path/YYYY-MM-DD-hh:mm:ss/<endpoint>/.
    """
    if not endpoints:
        raise ValueError("no endpoints given")
    keys = [artifact_key(ep)[:40] if isinstance(ep, str) else ep.slug() for ep in endpoints]
    twice = sorted({k for k in keys if keys.count(k) > 1})
    if twice:  # one endpoint's metadata would silently replace the other's
        raise ConfigurationError(f"endpoint {twice[0]} is given more than once: pass each endpoint once")
    options = extraction or ExtractionOptions()
    each = options.model_copy(update={"workers": max(1, (options.workers or os.cpu_count() or 1) // len(endpoints))})
    with ThreadPoolExecutor(max_workers=len(endpoints), thread_name_prefix="xtract-endpoint") as pool:
        futures = [
            pool.submit(contextvars.copy_context().run, xtract_endpoint, ep, extraction=each, return_state=True)
            for ep in endpoints
        ]
        states = [f.result() for f in futures]
    summaries = [s.result(raise_on_failure=False) for s in states]
    failed = [s for s in states if not s.is_completed()]
    if dest_path:
        sources = one_source_per_directory({s["endpoint"]: s["metadata_dir"]
                                            for s, st in zip(summaries, states, strict=True) if st.is_completed()})
        if sources:
            path = offload(sources, dest_path)["path"]
            for s in summaries:
                if isinstance(s, dict):
                    s["offload_path"] = path
    message = f"{len(states) - len(failed)} of {len(states)} endpoints completed"
    get_run_logger().info(message)
    if failed:
        return Failed(message=f"{message}; failed: " + "; ".join(str(s.message) for s in failed), data=summaries)
    return Completed(message=message, data=summaries)
