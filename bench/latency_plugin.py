"""An extractor plugin whose work is waiting: what reading from remote storage costs, per file.

Benchmarks and tests that measure scaling or kill workers mid-run need extraction that
takes a known time and is not CPU-bound. This writes a real installed distribution (a
module plus a dist-info with an ``xtract.extractors`` entry point) into a directory;
put it on PYTHONPATH of the flow process and of every worker. Files ``*.lat`` are then
extracted by sleeping ``XTRACT_LATENCY_S`` seconds (default 0.05) and reporting their size.
"""

from __future__ import annotations

import os

MODULE = '''
import os
import time

from extractors.base import Extractor


def extract_lat(path):
    time.sleep(float(os.environ.get("XTRACT_LATENCY_S", "0.05")))
    return {"bytes": os.path.getsize(path), "waited_s": float(os.environ.get("XTRACT_LATENCY_S", "0.05"))}


LAT = Extractor(name="latency", version="1.0", func=extract_lat, extensions=frozenset({"lat"}),
                mimes=frozenset({"application/x-latency-test"}))
'''


def write_plugin(site: str) -> str:
    """Write the plugin distribution under ``site``; returns ``site`` (for PYTHONPATH)."""
    info = os.path.join(site, "xtract_latency-1.0.dist-info")
    os.makedirs(info, exist_ok=True)
    with open(os.path.join(site, "xtract_latency.py"), "w", encoding="utf-8") as fh:
        fh.write(MODULE)
    with open(os.path.join(info, "METADATA"), "w", encoding="utf-8") as fh:
        fh.write("Metadata-Version: 2.1\nName: xtract-latency\nVersion: 1.0\n")
    with open(os.path.join(info, "entry_points.txt"), "w", encoding="utf-8") as fh:
        fh.write("[xtract.extractors]\nlatency = xtract_latency:LAT\n")
    return site


def write_tree(root: str, files: int, *, per_dir: int = 100) -> int:
    """``files`` small ``.lat`` files, ``per_dir`` to a directory; returns how many."""
    for i in range(files):
        d = os.path.join(root, f"d{i // per_dir:04d}")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, f"f{i:06d}.lat"), "w", encoding="utf-8") as fh:
            fh.write(f"{i}\n")
    return files
