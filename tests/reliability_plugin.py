"""A misbehaving extractor installed as a real plugin, plus a small pipeline driver.

The plugin is a module and a ``*.dist-info`` with an ``xtract.extractors`` entry
point in a temporary directory on ``sys.path`` (spawned pool workers inherit the
parent's sys.path) or on PYTHONPATH (CLI subprocesses). It claims the ``.fault``
extension; the file's first line says what to do: ``ok``, ``sleep S``, ``raise``,
``kill`` (SIGKILL its own worker), ``kill-once MARKER``, ``segv`` (a C crash via
ctypes), ``alloc`` (allocate without bound), ``hang-hard`` (block SIGALRM, sleep).
Nothing of ours is mocked: the registry discovers it like any third-party plugin.
"""

from __future__ import annotations

import os
import pathlib
import sys
import uuid
from collections.abc import Callable
from typing import Any

from extractors.registry import reload_registry
from tasks.crawl import crawl_to_spool
from tasks.group import group_spool, iter_groups
from tasks.habitats.local_crawl import LocalCrawler
from tasks.pools.base import PoolSpec
from tasks.pools.process import ProcessPool
from tasks.sink import finalize_metadata
from tasks.store.journal import StateStore
from tasks.store.layout import MetadataDir
from tasks.xtract import ExtractionRun, make_batches, skip_done

PLUGIN_SOURCE = '''
"""Test-only extractor whose files say how to misbehave."""
import os, signal, time

from extractors.base import Extractor


def extract_fault(path):
    with open(path, encoding="utf-8", errors="replace") as fh:
        words = fh.readline().split()
    what = words[0] if words else "ok"
    if what == "sleep":
        time.sleep(float(words[1]))
    elif what == "raise":
        raise ValueError("this file is bad on purpose")
    elif what == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif what == "kill-once":
        if not os.path.exists(words[1]):
            open(words[1], "w").close()
            os.kill(os.getpid(), signal.SIGKILL)
    elif what == "segv":
        import ctypes
        ctypes.string_at(0)
    elif what == "alloc":
        hoard = []
        while True:
            hoard.append(bytearray(64 * 1024 * 1024))
    elif what == "hang-hard":
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
        time.sleep(3600)
    return {"behaviour": what, "pid": os.getpid()}


FAULT = Extractor(name="fault", version="1.0", func=extract_fault, extensions=frozenset({"fault"}))
'''


def install_plugin(directory: pathlib.Path) -> pathlib.Path:
    """Write the plugin module and its dist-info into ``directory``; returns it."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "xtract_fault_plugin.py").write_text(PLUGIN_SOURCE)
    info = directory / "xtract_fault_plugin-0.1.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: xtract-fault-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[xtract.extractors]\nfault = xtract_fault_plugin:FAULT\n")
    return directory


class PluginOnPath:
    """Put the plugin on sys.path for this process and its spawned workers; undo on exit."""

    def __init__(self, directory: pathlib.Path) -> None:
        self.directory = str(install_plugin(directory))

    def __enter__(self) -> str:
        sys.path.insert(0, self.directory)
        reload_registry()
        return self.directory

    def __exit__(self, *exc: object) -> None:
        sys.path.remove(self.directory)
        sys.modules.pop("xtract_fault_plugin", None)
        reload_registry()


def fault_file(path: pathlib.Path, behaviour: str) -> pathlib.Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(behaviour + "\n")
    return path


def run_pipeline(root: pathlib.Path, out: pathlib.Path, *, workers: int = 2, batch: int = 3,
                 limit_s: float | None = 5.0, memory_mb: int | None = 1024, grace_s: float = 3.0,
                 max_retries: int = 1, grouper: str = "file_is_group",
                 between: Callable[[], None] | None = None, **run_options: Any) -> tuple[ExtractionRun, dict[str, Any]]:
    """crawl -> group -> ExtractionRun on a real process pool -> sink, without a flow around it.

    ``between`` runs after the crawl and before extraction (to change the files under it);
    ``run_options`` go to ExtractionRun (hooks such as ``on_record``).
    """
    layout = MetadataDir.of(str(out))
    crawl_to_spool(LocalCrawler(), [str(root)], layout.crawl_spool)
    group_spool(layout.crawl_spool, layout.groups_spool, grouper)
    if between is not None:
        between()
    os.makedirs(layout.groups, exist_ok=True)
    run_id = uuid.uuid4().hex
    state = StateStore(layout.state)
    pool = ProcessPool(PoolSpec(workers=workers, memory_limit_mb=memory_mb))
    try:
        run = ExtractionRun(pool, state, run_id, str(out), limit_s=limit_s, max_retries=max_retries,
                            grace_s=grace_s, poll_s=0.2, **run_options)
        todo = skip_done(iter_groups(layout.groups_spool), state, run_id, run.counters)
        run.run(make_batches(todo, max_groups=batch), max_in_flight=workers * 2)
    finally:
        pool.close()
        state.close()
    return run, finalize_metadata(str(out), run_id)
