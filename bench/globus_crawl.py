"""Benchmark: the Globus crawler through the loopback Transfer service, concurrent vs sequential.

    python bench/globus_crawl.py --latency-ms 50 --concurrency 16 [--files 20000 --dirs 1000]
    python bench/globus_crawl.py --synthetic --files 10000000 --dirs 10000 --no-sequential --group

Generates a tree (default 20,000 files in 1,000 directories) in a temporary
directory, serves it through tests/globus_service with the given per-listing
latency (in its own process), crawls it once with K listings in flight and once with one, and prints
as its last line one JSON object: files_per_s, sequential_files_per_s, speedup, peak_rss_mb.

``--synthetic`` serves a computed tree of the same shape instead (nothing on disk: 10M files
would not fit these machines' inodes). The concurrent crawl streams into a crawl spool as the
crawl stage does (``crawl_to_spool``); ``--group`` then groups the spool as the group stage does
(``group_spool``, file_is_group). peak_rss_mb is this process's peak (the service runs apart).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import resource
import subprocess
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import xtract_blocks._defaults  # noqa: E402, F401  (offline Prefect settings)
from tasks.crawl import crawl_to_spool  # noqa: E402
from tasks.group import group_spool  # noqa: E402
from tasks.habitats.globus_crawl import GlobusCrawler  # noqa: E402
from xtract_blocks.credentials import GlobusCredentials  # noqa: E402


def make_tree(root: str, n_files: int, n_dirs: int) -> None:
    """n_dirs directories (two levels, ~32 per parent) holding n_files files between them."""
    per_dir, extra = divmod(n_files, n_dirs)
    for d in range(n_dirs):
        sub = os.path.join(root, f"p{d // 32:03d}", f"d{d:05d}")
        os.makedirs(sub, exist_ok=True)
        for i in range(per_dir + (1 if d < extra else 0)):
            with open(os.path.join(sub, f"f{i:04d}.csv"), "w") as fh:
                fh.write("a,b\n1,2\n")


def crawl(creds: GlobusCredentials, ep: str, concurrency: int, spool: str | None = None) -> tuple[int, float, int]:
    crawler = GlobusCrawler(creds, ep, concurrency=concurrency)
    started = time.perf_counter()
    if spool:
        files = crawl_to_spool(crawler, ["/"], spool).files
    else:
        files = sum(len(b) for b in crawler.iter_batches(["/"], batch_size=10_000))
    seconds = time.perf_counter() - started
    if crawler.status.errors:
        raise SystemExit(f"crawl errors: {crawler.status.errors[:3]}")
    return files, seconds, crawler.status.dirs


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--latency-ms", type=float, default=50.0, help="latency the service adds to each listing")
    ap.add_argument("--concurrency", type=int, default=16, help="listings in flight in the concurrent run")
    ap.add_argument("--files", type=int, default=20_000)
    ap.add_argument("--dirs", type=int, default=1_000)
    ap.add_argument("--synthetic", action="store_true", help="serve a computed tree (nothing written to disk)")
    ap.add_argument("--no-sequential", action="store_true", help="skip the one-listing-at-a-time crawl")
    ap.add_argument("--group", action="store_true", help="group the crawl spool too (file_is_group)")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="globus-bench-") as root:
        tree = ["--synthetic", str(args.files), str(args.dirs)] if args.synthetic else ["--root", root]
        if not args.synthetic:
            make_tree(root, args.files, args.dirs)
        rss_before = peak_rss_mb()
        # the service runs in its own process, as the real one would not share the crawler's GIL
        server = subprocess.Popen([sys.executable, "-m", "tests.globus_service", *tree,
                                   "--latency-ms", str(args.latency_ms)], cwd=REPO, stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True)
        try:
            info = json.loads(server.stdout.readline())
            os.environ.update(info["environ"])
            ep = info["endpoint_id"]

            def creds() -> GlobusCredentials:
                return GlobusCredentials(client_id=info["client_id"], client_secret=info["client_secret"])

            spool = os.path.join(root, "crawl.parquet")
            files, conc_s, dirs = crawl(creds(), ep, args.concurrency, spool)
            crawl_rss = peak_rss_mb()
            group_s = groups = None
            if args.group:
                t0 = time.perf_counter()
                groups = group_spool(spool, os.path.join(root, "groups.parquet"), "file_is_group")["groups"]
                group_s = time.perf_counter() - t0
            seq_files, seq_s = files, None
            if not args.no_sequential:
                seq_files, seq_s, _ = crawl(creds(), ep, 1)
        finally:
            server.stdin.close()
            server.wait(timeout=30)
        assert seq_files == files == args.files, (files, seq_files)
        result = {
            "files": files, "dirs": dirs, "latency_ms": args.latency_ms, "concurrency": args.concurrency,
            "synthetic": args.synthetic, "seconds": round(conc_s, 3), "files_per_s": round(files / conc_s, 1),
            "sequential_seconds": seq_s and round(seq_s, 3),
            "sequential_files_per_s": seq_s and round(seq_files / seq_s, 1),
            "speedup": seq_s and round(seq_s / conc_s, 2),
            "groups": groups, "group_seconds": group_s and round(group_s, 2),
            "rss_before_crawl_mb": round(rss_before, 1), "peak_rss_after_crawl_mb": round(crawl_rss, 1),
            "peak_rss_mb": round(peak_rss_mb(), 1), "load_avg_1m": round(os.getloadavg()[0], 2),
        }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
