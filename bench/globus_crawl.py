"""Benchmark: the Globus crawler through the loopback Transfer service, concurrent vs sequential.

    python bench/globus_crawl.py --latency-ms 50 --concurrency 16 [--files 20000 --dirs 1000]

Generates a tree (default 20,000 files in 1,000 directories) in a temporary
directory, serves it through tests/globus_service with the given per-listing
latency (in its own process), crawls it once with K listings in flight and once with one, and prints
as its last line one JSON object: files_per_s, sequential_files_per_s, speedup.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import xtract_blocks._defaults  # noqa: E402, F401  (offline Prefect settings)
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


def crawl(creds: GlobusCredentials, ep: str, concurrency: int) -> tuple[int, float, int]:
    crawler = GlobusCrawler(creds, ep, concurrency=concurrency)
    started = time.perf_counter()
    files = sum(len(b) for b in crawler.iter_batches(["/"], batch_size=10_000))
    seconds = time.perf_counter() - started
    if crawler.status.errors:
        raise SystemExit(f"crawl errors: {crawler.status.errors[:3]}")
    return files, seconds, crawler.status.dirs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--latency-ms", type=float, default=50.0, help="latency the service adds to each listing")
    ap.add_argument("--concurrency", type=int, default=16, help="listings in flight in the concurrent run")
    ap.add_argument("--files", type=int, default=20_000)
    ap.add_argument("--dirs", type=int, default=1_000)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="globus-bench-") as root:
        make_tree(root, args.files, args.dirs)
        # the service runs in its own process, as the real one would not share the crawler's GIL
        server = subprocess.Popen([sys.executable, "-m", "tests.globus_service", "--root", root,
                                   "--latency-ms", str(args.latency_ms)], cwd=REPO, stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True)
        try:
            info = json.loads(server.stdout.readline())
            os.environ.update(info["environ"])
            ep = info["endpoint_id"]

            def creds() -> GlobusCredentials:
                return GlobusCredentials(client_id=info["client_id"], client_secret=info["client_secret"])

            files, conc_s, dirs = crawl(creds(), ep, args.concurrency)
            seq_files, seq_s, _ = crawl(creds(), ep, 1)
        finally:
            server.stdin.close()
            server.wait(timeout=30)
        assert seq_files == files == args.files, (files, seq_files)
        result = {
            "files": files, "dirs": dirs, "latency_ms": args.latency_ms, "concurrency": args.concurrency,
            "seconds": round(conc_s, 3), "sequential_seconds": round(seq_s, 3),
            "files_per_s": round(files / conc_s, 1), "sequential_files_per_s": round(seq_files / seq_s, 1),
            "speedup": round(seq_s / conc_s, 2),
        }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
