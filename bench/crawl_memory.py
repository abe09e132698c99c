"""Peak RSS of crawl + group over a big tree (default 1M files), measured in a child process.

The child imports what the flow process imports for these stages (``tasks.crawl``,
``tasks.group``, hence Prefect and pyarrow), records its RSS after imports, runs
``crawl_to_spool`` then ``group_spool`` exactly as the tasks do, and reports
``resource.getrusage(RUSAGE_SELF).ru_maxrss`` (the peak over its whole life). A
fresh process per size means one size's peak cannot hide in another's.

    python bench/crawl_memory.py                       # 1M files (builds the tree once, ~3 min)
    python bench/crawl_memory.py --files 100000 1000000  # flatness: the same peak at both sizes
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from bench.make_tree import ensure  # noqa: E402


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def child(root: str, work: str, grouper: str) -> dict[str, float | int]:
    """Runs in the measured process."""
    from tasks.crawl import crawl_to_spool
    from tasks.group import group_spool
    from tasks.habitats.local_crawl import LocalCrawler

    after_imports = _rss_mb() if os.path.exists("/proc/self/statm") else float("nan")
    t0 = time.perf_counter()
    status = crawl_to_spool(LocalCrawler("local"), [root], os.path.join(work, "crawl.parquet"))
    t1 = time.perf_counter()
    peak_crawl = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    counts = group_spool(os.path.join(work, "crawl.parquet"), os.path.join(work, "groups.parquet"), grouper)
    t2 = time.perf_counter()
    return {"files": status.files, "groups": counts["groups"], "rss_after_imports_mb": round(after_imports, 1),
            "peak_rss_after_crawl_mb": round(peak_crawl, 1),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "crawl_s": round(t1 - t0, 2), "group_s": round(t2 - t1, 2)}


def measure(n_files: int, grouper: str, tree: str | None = None) -> dict[str, float | int]:
    root = tree or os.path.join(tempfile.gettempdir(), "xtract-bench", f"tree-{n_files}")
    ensure(root, n_files)
    with tempfile.TemporaryDirectory(prefix="xtract-bench-mem-") as work:
        out = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", root, work, grouper],
                             capture_output=True, text=True, cwd=REPO, check=False)
        if out.returncode != 0:
            raise SystemExit(f"child failed ({out.returncode}):\n{out.stderr[-3000:]}")
        return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--child":
        print(json.dumps(child(*argv[1:4])))
        return 0
    ap = argparse.ArgumentParser(description="peak RSS of crawl + group, in a child process")
    ap.add_argument("--files", type=int, nargs="+", default=[1_000_000], help="tree sizes (default 1000000)")
    ap.add_argument("--grouper", default="file_is_group", choices=("file_is_group", "directory", "related"))
    ap.add_argument("--tree", default=None, help="use this tree (only with one --files value)")
    args = ap.parse_args(argv)
    results = {}
    for n in args.files:
        r = measure(n, args.grouper, args.tree)
        print(f"{n} files: {r}")
        results[str(n)] = r
    last = results[str(args.files[-1])]
    print(json.dumps({"files": last["files"], "grouper": args.grouper, "peak_rss_mb": last["peak_rss_mb"],
                      "rss_after_imports_mb": last["rss_after_imports_mb"], "target_mb": 300,
                      "by_size": {k: v["peak_rss_mb"] for k, v in results.items()}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
