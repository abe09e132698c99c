"""Start-up and shut-down speed tweaks, in one place, each with its reason.

An `xtract run` pays Prefect's fixed start-up before any work (bench/RESULTS.md has the
figures); these overlap or skip what can be overlapped or skipped. None changes results.
"""

from __future__ import annotations

import gc
import importlib
import sys
import threading


def skip_exit_collection() -> None:
    """Registered (atexit) before Prefect is imported, so it runs after Prefect's exit handlers.

    Tearing down Prefect's, pandas' and pyarrow's objects made the cyclic GC walk the whole heap
    after the work was done; frozen objects are left for the OS to reclaim. Nothing of ours needs
    a finalizer then: files and databases are closed where they are used.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    gc.freeze()


def import_in_background(module: str) -> None:
    """Import a module on a daemon thread while the caller works (the run report needs pandas, whose
    import would otherwise sit between the last extracted batch and the summary)."""
    threading.Thread(target=importlib.import_module, args=(module,), daemon=True,
                     name=f"xtract-import-{module.rsplit('.', 1)[-1]}").start()
