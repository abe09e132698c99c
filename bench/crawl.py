"""Local crawl vs ``find``: files/s of our crawl (the crawl task's code path) beside GNU find.

Ours is ``tasks.crawl.crawl_to_spool(LocalCrawler(...), ...)``: exactly what the
``crawl`` task runs, including writing the Parquet spool; find is
``find DIR -type f -printf '%p %s %T@\\n'`` with its output drained by this process
(so find pays for its output, as we pay for our spool). Both run on the same tree
with a warm cache (one untimed pass of each first), alternating, best of
``--repeat``; the ratio is of the two bests, measured in the same run because the
machine is shared and absolute numbers drift.

    python bench/crawl.py --files 100000          # last line: one JSON object

With ``--memory`` it also measures the peak RSS of crawl + group (see crawl_memory.py).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.make_tree import ensure  # noqa: E402


def run_find(root: str) -> tuple[int, float]:
    """(files, seconds) of ``find -printf`` with its output read by us."""
    started = time.perf_counter()
    proc = subprocess.Popen(["find", root, "-type", "f", "-printf", "%p %s %T@\n"], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    lines = 0
    while chunk := proc.stdout.read(1 << 20):
        lines += chunk.count(b"\n")
    proc.wait()
    return lines, time.perf_counter() - started


def run_ours(root: str, spool: str) -> tuple[int, float]:
    """(files, seconds) of the crawl task's code path, spool included."""
    from tasks.crawl import crawl_to_spool
    from tasks.habitats.local_crawl import LocalCrawler

    started = time.perf_counter()
    status = crawl_to_spool(LocalCrawler("local"), [root], spool)
    return status.files, time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="our local crawl vs find, files/s")
    ap.add_argument("--files", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=5, help="timed repetitions of each (best is kept)")
    ap.add_argument("--tree", default=None, help="tree directory (default: $TMPDIR/xtract-bench/tree-N)")
    args = ap.parse_args(argv)
    root = args.tree or os.path.join(tempfile.gettempdir(), "xtract-bench", f"tree-{args.files}")
    tree = ensure(root, args.files)
    spool = os.path.join(tempfile.mkdtemp(prefix="xtract-bench-spool-"), "crawl.parquet")
    run_ours(root, spool)  # warm the page cache, imports and pyarrow kernels for both
    run_find(root)
    ours: list[float] = []
    theirs: list[float] = []
    for i in range(args.repeat):
        for name in (("ours", "find") if i % 2 == 0 else ("find", "ours")):
            if name == "ours":
                n_ours, secs = run_ours(root, spool)
                ours.append(secs)
            else:
                n_find, secs = run_find(root)
                theirs.append(secs)
    if n_ours != n_find or n_ours != tree["files"]:
        print(f"file counts differ: ours {n_ours}, find {n_find}, tree {tree['files']}", file=sys.stderr)
        return 1
    os.unlink(spool)
    os.rmdir(os.path.dirname(spool))
    ours_fps = n_ours / min(ours)
    find_fps = n_find / min(theirs)
    print(f"tree {root}: {n_ours} files; best of {args.repeat}: ours {min(ours):.3f}s, find {min(theirs):.3f}s")
    print(f"ours all runs (s): {[round(x, 3) for x in ours]}")
    print(f"find all runs (s): {[round(x, 3) for x in theirs]}")
    print(json.dumps({"files": n_ours, "ours_files_per_s": round(ours_fps), "find_files_per_s": round(find_fps),
                      "ratio": round(ours_fps / find_fps, 3), "repeat": args.repeat,
                      "median_ratio": round(sorted(theirs)[len(theirs) // 2] / sorted(ours)[len(ours) // 2], 3)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
