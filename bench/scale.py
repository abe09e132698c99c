"""Scaling, measured: one tree through 1, 2 and 4 Dask workers (CLI processes on this machine).

Extraction is made latency-bound by an extractor that waits ``--latency`` seconds a file
(bench/latency_plugin.py: what reading from remote storage costs), so more workers than
cores still help, as they do against a remote file system. Each worker count runs
``xtract run --executor dask --dask-address`` as a whole process against a real
``dask scheduler`` and ``--workers`` ``dask worker`` processes; the xtract stage's wall
time (``stage_seconds.xtract`` of the run's --json line) is what scales, the rest is
Prefect's fixed cost. The last line is one JSON object with ``efficiency_at_4`` (speedup
at 4 workers over 1, divided by 4) for the stage and for the whole process.

With ``--cpu-files N`` it also runs bench/end_to_end.py at N files (CPU-bound extraction
on the local process pool) and reports its ``speedup_2_workers`` as ``speedup_2_workers_cpu``.

    python bench/scale.py --files 1000 --latency 0.02 [--cpu-files 40000]
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

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from bench.end_to_end import start_server  # noqa: E402
from bench.latency_plugin import write_plugin, write_tree  # noqa: E402
from tests.dask_cluster import start_cluster  # noqa: E402


def run_once(data: str, out: str, address: str, env: dict[str, str]) -> dict:
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "flows.cli", "run", data, "-o", out, "--executor", "dask",
                           "--dask-address", address, "--json", "--quiet"], env=env, cwd=REPO,
                          capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"xtract run failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    return {"wall_s": wall, "xtract_s": summary["stage_seconds"]["xtract"], "extracted": summary["extracted"]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=1000)
    ap.add_argument("--latency", type=float, default=0.02, help="seconds each file's extraction waits")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--cpu-files", type=int, default=0, help="also run end_to_end.py at this size (0: skip)")
    args = ap.parse_args(argv)

    work = tempfile.mkdtemp(prefix="xtract-bench-scale-")
    data = os.path.join(work, "data")
    write_tree(data, args.files)
    site = write_plugin(os.path.join(work, "site"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PYTHONPATH=os.pathsep.join([site, REPO]), XTRACT_LATENCY_S=str(args.latency),
               PREFECT_SERVER_ANALYTICS_ENABLED="false", DO_NOT_TRACK="1", PREFECT_LOGGING_LEVEL="WARNING")
    os.makedirs(os.path.join(work, "prefect-home"))
    server, env["PREFECT_API_URL"], _ = start_server(os.path.join(work, "prefect-home"), env)
    runs: dict[int, dict] = {}
    try:
        for n in args.workers:
            cluster = start_cluster(env, pathlib.Path(work) / f"logs-{n}", workers=n)
            try:
                runs[n] = run_once(data, os.path.join(work, f"out-{n}"), cluster.address, env)
            finally:
                cluster.stop()
            if runs[n]["extracted"] != args.files:
                raise SystemExit(f"{n} workers extracted {runs[n]['extracted']} of {args.files} files")
            print(f"{n} worker(s): xtract stage {runs[n]['xtract_s']:.2f}s, whole run {runs[n]['wall_s']:.2f}s",
                  file=sys.stderr)
    finally:
        server.terminate()
        server.wait(timeout=30)
    one, most = runs[min(runs)], runs[max(runs)]
    result: dict = {
        "files": args.files, "latency_s": args.latency, "workers": sorted(runs),
        "xtract_s": {str(n): round(r["xtract_s"], 2) for n, r in runs.items()},
        "wall_s": {str(n): round(r["wall_s"], 2) for n, r in runs.items()},
        "ideal_xtract_s_1_worker": round(args.files * args.latency, 2),
        f"efficiency_at_{max(runs)}": round(one["xtract_s"] / most["xtract_s"] / (max(runs) / min(runs)), 3),
        f"efficiency_at_{max(runs)}_whole_run": round(one["wall_s"] / most["wall_s"] / (max(runs) / min(runs)), 3),
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }
    if args.cpu_files:
        proc = subprocess.run([sys.executable, os.path.join(REPO, "bench", "end_to_end.py"), "--files",
                               str(args.cpu_files)], cwd=REPO, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise SystemExit(f"end_to_end.py failed:\n{proc.stderr[-3000:]}")
        e2e = json.loads(proc.stdout.strip().splitlines()[-1])
        result["cpu_files"] = args.cpu_files
        result["speedup_2_workers_cpu"] = e2e["speedup_2_workers"]
        result["speedup_bound_prefect_floor_cpu"] = e2e["speedup_bound_prefect_floor"]
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
