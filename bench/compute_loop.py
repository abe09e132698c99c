"""Benchmark: groups/s through the real Globus Compute loop beside the local process pool, on the same tree.

    python bench/compute_loop.py [--files 3000 --workers 2 --batch 100 --rounds 2]

Makes a tree of small CSV and text files (one group per file), then extracts the same groups with
``ExtractionRun`` (the xtract stage's driver) through

- the local process pool (``PoolSpec(kind="local")``, workers writing the documents), and
- ``ComputePool`` on the unmodified ``globus_compute_sdk.Executor``: loopback Compute web service
  (tests/compute_service, in this process), a real RabbitMQ broker, a real ``globus-compute-endpoint``
  (ProcessPoolEngine with ``--workers`` worker processes) on this machine; documents come back in the
  results and this process writes them.

Rounds alternate local/compute; each prints one line, and the last line is one JSON object with the
best groups/s of each and their ratio. Needs rabbitmq-server and .venv-endpoint (``make broker endpoint``).
The endpoint's fixed start (broker ~4 s, endpoint ~2 s, first user endpoint ~1 s) is not timed.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import pathlib
import shutil
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import xtract_blocks._defaults  # noqa: E402, F401  (offline Prefect settings)
from tasks.pools.base import ComputeOptions, PoolSpec  # noqa: E402
from tasks.pools.globus_compute.entry import xtract_remote_batch  # noqa: E402
from tasks.pools.globus_compute.registration import SdkBackend  # noqa: E402
from tasks.pools.plan import open_pool  # noqa: E402
from tasks.store.journal import StateStore  # noqa: E402
from tasks.xtract import ExtractionRun, make_batches  # noqa: E402
from tests.compute_service.broker import RabbitBroker  # noqa: E402
from tests.compute_service.endpoint import EndpointProcess  # noqa: E402
from tests.compute_service.service import ComputeService  # noqa: E402
from tests.globus_service import GlobusService  # noqa: E402
from xtract_blocks import GlobusComputeSettings  # noqa: E402
from xtract_blocks.credentials import GlobusCredentials  # noqa: E402


def make_tree(root: pathlib.Path, n: int) -> list[dict]:
    groups = []
    for i in range(n):
        d = root / f"d{i // 100:03d}"
        d.mkdir(parents=True, exist_ok=True)
        if i % 3:
            p = d / f"t{i}.csv"
            with open(p, "w", newline="") as fh:
                w = csv.writer(fh)
                w.writerow(["a", "b", "c", "name"])
                w.writerows([r, r * 0.5, r * i, f"n{r}"] for r in range(20 + i % 30))
        else:
            p = d / f"n{i}.txt"
            p.write_text(f"notes for sample {i}\n" * (5 + i % 20))
        st = p.stat()
        groups.append({"group_id": f"g{i:06d}", "fingerprint": "fp", "endpoint": "bench", "extractor": None,
                       "files": [{"path": str(p), "size": st.st_size, "mtime": st.st_mtime,
                                  "extension": p.suffix.lstrip("."), "mime": None, "extractor": None}]})
    return groups


def extract(spec: PoolSpec, groups: list[dict], out: pathlib.Path, batch: int, in_flight: int) -> tuple[float, int]:
    shutil.rmtree(out, ignore_errors=True)
    (out / "groups").mkdir(parents=True)
    pool = open_pool(spec)
    state = StateStore(str(out / ".xtract"))
    try:
        run = ExtractionRun(pool, state, "bench", str(out), limit_s=60.0, max_retries=1, poll_s=0.05)
        t0 = time.perf_counter()
        counters = run.run(make_batches(iter(groups), max_groups=batch), max_in_flight=in_flight)
        seconds = time.perf_counter() - t0
    finally:
        pool.close()
        state.close()
    done = counters.fx_success + counters.fx_failed
    return seconds, done


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=3000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    base = pathlib.Path(tempfile.mkdtemp(prefix="xtract-compute-bench-"))
    try:
        groups = make_tree(base / "data", args.files)
        with GlobusService() as globus:
            cid, secret = globus.add_client()
            env = globus.environ()
            with RabbitBroker(str(base / "broker")) as broker, ComputeService(globus, broker.url) as service:
                env = {**env, **service.environ()}
                os.environ.update(env)
                ep = EndpointProcess(str(base / "endpoint"), env, cid, secret, workers=args.workers)
                try:
                    ep.start()
                    creds = GlobusCredentials(client_id=cid, client_secret=secret)
                    fid = SdkBackend(ep.endpoint_id, creds).register_function(xtract_remote_batch)
                    compute = PoolSpec(kind="globus-compute", workers=args.workers, compute=ComputeOptions(
                        endpoint_id=ep.endpoint_id, settings=GlobusComputeSettings(backend="sdk"),
                        credentials=creds, function_id=fid))
                    local = PoolSpec(kind="local", workers=args.workers)
                    best = {"local": 0.0, "compute": 0.0}
                    extract(compute, groups[:50], base / "warm", 25, 2)  # starts the user endpoint
                    for r in range(args.rounds):
                        for name, spec in (("local", local), ("compute", compute)):
                            secs, done = extract(spec, groups, base / f"out-{name}", args.batch, 2 * args.workers)
                            rate = done / secs
                            best[name] = max(best[name], rate)
                            print(f"round {r + 1} {name}: {done} groups in {secs:.2f} s = {rate:,.0f} groups/s",
                                  flush=True)
                finally:
                    ep.stop()
        print(json.dumps({"files": args.files, "workers": args.workers, "batch": args.batch,
                          "local_groups_per_s": round(best["local"], 1),
                          "compute_groups_per_s": round(best["compute"], 1),
                          "compute_over_local": round(best["compute"] / best["local"], 3),
                          "load_avg": os.getloadavg()[0]}))
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
