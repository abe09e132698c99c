"""Search benchmark: build the search index of N synthetic records as the flow does, beside a bare FTS5 insert.

    .venv/bin/python bench/search.py [--records 1000000] [--repeat 5] [--no-facts]

Records look like what the extractors write (netCDF variables, table columns, free-text
keywords). They are generated first (untimed) as JSON lines, the form the flow reads group
files in. Then, each in its own process so its peak RSS is its own:

* build: the flow's path for a first build: ``pipelined`` chunks of BULK_CHUNK documents, parsed and turned into
  text in a helper thread (``Prepared.add_group``), written by ``write_prepared`` into an empty
  index (``begin_bulk``/``end_bulk``);
* facts: the facts pass of the same sync (``FactSegments``: parse, ``doc_facts``, segment
  writes), timed on its own (facts_seconds; --no-facts skips it);
* anchor: a bare SQLite FTS5 table (path, keys, text) filled in one transaction with the same
  text (only the INSERTs are timed).

Then the queries below are timed against the built index. The last line is one JSON object:
records, build_seconds, peak_rss_mb (the build process), query_p95_ms, fts5_anchor_seconds,
build_vs_anchor, facts_seconds, facts_peak_rss_mb, and per-query medians.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import resource
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tasks.store import fastjson  # noqa: E402
from tasks.store.facts import FactColumns, FactSegments, doc_facts  # noqa: E402
from tasks.store.search import Prepared, SearchIndex, SyncStats  # noqa: E402
from tasks.store.search_text import file_text  # noqa: E402
from tasks.store.sync_merge import BULK_CHUNK, pipelined  # noqa: E402

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


def generate(path: str, n: int) -> None:
    """N records as JSON lines [row, metadata] (what the flow reads from the journal and group files)."""
    rng = random.Random(42)
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(n):
            row, md = synthetic(i, rng)
            fh.write(json.dumps([row, md]) + "\n")


def read_chunks(path: str, size: int = BULK_CHUNK) -> Iterator[list[bytes]]:
    """Lines as bytes, the way the flow reads group files."""
    with open(path, "rb") as fh:
        chunk: list[bytes] = []
        for line in fh:
            chunk.append(line)
            if len(chunk) >= size:
                yield chunk
                chunk = []
        if chunk:
            yield chunk


def prepare(lines: list[bytes]) -> Prepared:
    """The helper thread's half, as in the flow: parse documents, make rows, text and facts."""
    p = Prepared()
    for line in lines:
        row, md = fastjson.loads(line)
        p.reindex.append((row[1], "fp", "bench", True))
        p.add_group(row[1], {"metadata": md}, [tuple(row)])
    p.encoded = p.payload()
    return p


def build(db: str, records: str, result: multiprocessing.Queue) -> None:
    """Runs in its own process: its peak RSS is the build's."""
    started = time.perf_counter()
    stats = SyncStats()
    with SearchIndex(db) as index:
        bulk = index.begin_bulk()
        pipelined(read_chunks(records), prepare, lambda p: index.write_prepared(p, stats))
        if bulk:
            index.end_bulk()
    result.put({"seconds": time.perf_counter() - started, "files": stats.files_indexed,
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024})


def prepare_facts(lines: list[bytes]) -> tuple[list, list, FactColumns, set[str]]:
    facts = FactColumns()
    reindex = []
    for line in lines:
        row, md = fastjson.loads(line)
        reindex.append((row[1], "fp", "bench", True))
        doc_facts({"metadata": md}, row[1], [row[0]], facts)
    return reindex, [], facts, set(facts.group_id)


def build_facts(db: str, dataset: str, records: str, result: multiprocessing.Queue) -> None:
    """The facts pass over the same documents, in its own process (its writes as the flow's pass makes them)."""
    started = time.perf_counter()
    with SearchIndex(db) as index:
        facts = FactSegments(index.db, dataset)
        pipelined(read_chunks(records), prepare_facts, lambda p: facts._add(*p))
        rows = facts._rows + len(facts._pending)
        facts.finish()
    result.put({"seconds": time.perf_counter() - started, "rows": rows,
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024})


def anchor(db: str, records: str, result: multiprocessing.Queue) -> None:
    """A bare FTS5 table filled with the same text in one transaction; only the INSERTs are timed."""
    con = sqlite3.connect(db, isolation_level=None)
    con.execute("CREATE VIRTUAL TABLE fts USING fts5(path, keys, text)")
    con.execute("BEGIN")
    timed = 0.0
    for lines in read_chunks(records, 20_000):
        docs = [json.loads(line) for line in lines]
        rows = [(row[0], *file_text({"metadata": md}, row[0], None)) for row, md in docs]
        t0 = time.perf_counter()
        con.executemany("INSERT INTO fts VALUES (?,?,?)", rows)
        timed += time.perf_counter() - t0
    t0 = time.perf_counter()
    con.execute("COMMIT")
    timed += time.perf_counter() - t0
    con.close()
    result.put({"seconds": timed})


def in_process(target, *args) -> dict:  # noqa: ANN001 - a bench helper
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    proc = ctx.Process(target=target, args=(*args, queue))
    proc.start()
    out = queue.get()
    proc.join()
    return out


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
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--limit", type=int, default=20)
    ap.add_argument("--no-facts", action="store_true", help="build the search index without the facts dataset")
    ap.add_argument("--workdir", default=None, help="where the records, index and anchor go (default: a temp dir)")
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="xtract-bench-search-", dir=args.workdir)
    try:
        records = os.path.join(work, "records.jsonl")
        t0 = time.perf_counter()
        generate(records, args.records)
        print(f"generated {args.records:,} records in {time.perf_counter() - t0:.1f}s", flush=True)
        db = os.path.join(work, "search.sqlite")
        built = in_process(build, db, records)
        print(f"build: {built['seconds']:.1f}s ({args.records / built['seconds']:,.0f} records/s), "
              f"peak RSS {built['peak_rss_mb']:.0f} MB", flush=True)
        facts = {"seconds": None, "rows": None, "peak_rss_mb": None}
        if not args.no_facts:
            facts = in_process(build_facts, os.path.join(work, "facts.sqlite"), os.path.join(work, "facts.parquet"),
                               records)
            print(f"facts: {facts['rows']:,} rows in {facts['seconds']:.1f}s, peak RSS {facts['peak_rss_mb']:.0f} MB",
                  flush=True)
        anchored = in_process(anchor, os.path.join(work, "anchor.sqlite"), records)
        print(f"anchor (bare FTS5 insert of the same text): {anchored['seconds']:.1f}s", flush=True)
        size = sum(os.path.getsize(db + s) for s in ("", "-wal") if os.path.exists(db + s))
        print(f"index: {args.records:,} records, {size / 1e6:,.0f} MB")
        print(f"{'query':34} {'hits':>5} {'median ms':>10} {'worst ms':>9}")
        all_times: list[float] = []
        medians: dict[str, float] = {}
        with SearchIndex(db) as index:
            for label, query, filters in QUERIES:
                times = []
                for _ in range(args.repeat):
                    t1 = time.perf_counter()
                    hits = index.search(query, limit=args.limit, **filters)
                    times.append((time.perf_counter() - t1) * 1000)
                all_times += times
                medians[label] = round(statistics.median(times), 2)
                print(f"{label:34} {len(hits):>5} {statistics.median(times):>10.1f} {max(times):>9.1f}", flush=True)
        p95 = statistics.quantiles(all_times, n=20, method="inclusive")[18] if len(all_times) > 1 else all_times[0]
        print(json.dumps({
            "records": args.records, "build_seconds": round(built["seconds"], 2),
            "peak_rss_mb": round(built["peak_rss_mb"], 1), "query_p95_ms": round(p95, 2),
            "fts5_anchor_seconds": round(anchored["seconds"], 2),
            "build_vs_anchor": round(built["seconds"] / anchored["seconds"], 3),
            "facts_seconds": facts["seconds"] and round(facts["seconds"], 2), "facts_rows": facts["rows"],
            "facts_peak_rss_mb": facts["peak_rss_mb"] and round(facts["peak_rss_mb"], 1),
            "index_mb": round(size / 1e6, 1), "load_avg_1m": round(os.getloadavg()[0], 2), "query_median_ms": medians,
        }))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
