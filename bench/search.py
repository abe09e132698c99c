"""Search benchmark: build an index of N synthetic file records, then time queries.

    .venv/bin/python bench/search.py [--records 1000000] [--db PATH] [--repeat 5]

Records look like what the extractors write (netCDF variables, table columns,
free-text keywords), indexed through the same ``SearchIndex.add_files`` the flow
uses. Prints build rate, index size, and median / worst latency per query.
An existing --db with the right record count is reused, so queries can be re-timed.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tasks.store.search import SearchIndex  # noqa: E402

VARIABLES = ["tas", "pr", "psl", "uas", "vas", "hurs", "huss", "rsds", "rlds", "clt", "sfcWind", "tasmax", "tasmin",
             "evspsbl", "mrro", "snw", "zg", "ta", "ua", "va", "hus", "wap", "ts", "sic", "sst", "sos", "thetao"]
WORDS = ["temperature", "pressure", "humidity", "wind", "precipitation", "radiation", "cloud", "snow", "ice", "ocean",
         "salinity", "velocity", "height", "flux", "mass", "density", "depth", "station", "sample", "run", "model",
         "experiment", "calibration", "spectrometer", "detector", "beam", "energy", "protein", "sequence", "genome"]


def synthetic(i: int, rng: random.Random) -> tuple[tuple, dict]:
    kind = i % 3
    path = f"/data/project{i % 97}/run{i % 1013}/file{i}.{('nc', 'csv', 'txt')[kind]}"
    if kind == 0:
        names = rng.sample(VARIABLES, 4)
        if i % 10_000 == 7:
            names.append("needle_variable")  # rare: 1 in 10k
        md = {"netcdf": {"format": "NETCDF4", "dimensions": [{"name": "time", "size": rng.randint(1, 9999)}],
                         "variables": [{"name": n, "dims": ["time", "lat", "lon"], "dtype": "float32",
                                        "attributes": {"units": "K", "long_name": rng.choice(WORDS)}} for n in names]}}
        ex = "netcdf"
    elif kind == 1:
        cols = rng.sample(WORDS, 5)
        columns = [{"name": c, "dtype": "float64", "mean": rng.random()} for c in cols]
        md = {"tabular": {"rows": rng.randint(1, 10**6), "columns": columns}}
        ex = "tabular"
    else:
        md = {"keyword": {"keywords": rng.sample(WORDS, 6), "lines": rng.randint(1, 5000)}}
        ex = "keyword"
    gid = f"g{i:012d}"
    row = (path, gid, rng.randint(0, 10**9), 1.6e9 + rng.random() * 1e8, path.rsplit(".", 1)[1], None, ex, "ok", None)
    return row, md


def build(db: str, n: int, chunk: int = 20_000) -> float:
    rng = random.Random(42)
    started = time.perf_counter()
    with SearchIndex(db) as index:
        index.db.execute("PRAGMA synchronous=OFF")
        for start in range(0, n, chunk):
            with index.db:
                index.db.execute("BEGIN")
                rows = (synthetic(i, rng) for i in range(start, min(n, start + chunk)))
                items = [(row, {"metadata": md}) for row, md in rows]
                index.add_files(items)
                index.db.executemany("INSERT INTO groups VALUES (?,?,?)", [(row[1], "fp", "bench") for row, _ in items])
            if start and start % 200_000 == 0:
                print(f"  {start:,} records, {start / (time.perf_counter() - started):,.0f}/s", flush=True)
        index.db.execute("INSERT INTO fts(fts) VALUES ('optimize')")
    return time.perf_counter() - started


QUERIES: list[tuple[str, str, dict]] = [
    ("rare term (1 in 10k)", "needle_variable", {}),
    ("key=value (1 in ~7)", "name=tas", {}),
    ("key=value + ext filter", "name=tas", {"ext": "nc"}),
    ("common term (~1 in 3)", "temperature", {}),
    ("two terms AND", "temperature pressure", {}),
    ("OR of two", "tasmax OR tasmin", {}),
    ("prefix", "calib*", {}),
    ("path word + extractor", "project42", {"extractor": "tabular"}),
    ("very common (every nc)", "NETCDF4", {}),
    ("filters only (ext + size)", "", {"ext": "csv", "min_size": 900_000_000}),
]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--db", default=os.path.join(tempfile.gettempdir(), "xtract-bench-search.sqlite"))
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--limit", type=int, default=20)
    args = ap.parse_args()
    have = 0
    if os.path.exists(args.db):
        with SearchIndex(args.db) as index:
            have = index.count()
    if have != args.records:
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(args.db + suffix):
                os.unlink(args.db + suffix)
        print(f"building {args.records:,} records into {args.db}")
        secs = build(args.db, args.records)
        print(f"built in {secs:.1f}s ({args.records / secs:,.0f} records/s)")
    size = sum(os.path.getsize(args.db + s) for s in ("", "-wal") if os.path.exists(args.db + s))
    print(f"index: {args.records:,} records, {size / 1e6:,.0f} MB")
    print(f"{'query':34} {'hits':>5} {'median ms':>10} {'worst ms':>9}")
    with SearchIndex(args.db) as index:
        for label, query, filters in QUERIES:
            times = []
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                hits = index.search(query, limit=args.limit, **filters)
                times.append((time.perf_counter() - t0) * 1000)
            print(f"{label:34} {len(hits):>5} {statistics.median(times):>10.1f} {max(times):>9.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
