"""End to end: ``xtract run`` against a plain Python loop over the same files and extractor functions.

What is compared (each a fresh subprocess, timed from start to exit):

* plain loop: one process walks the corpus, asks the same registry for each file's
  extractor (``registry.infer``: extension, then the file's head) and calls the same
  extractor function, then the registry's fallbacks when it says "not my format" (as
  the pipeline's chain does), keeping the results in memory. It writes nothing: it is the
  floor the pipeline cannot go under with one worker.
* plain loop x 2: two such processes at once, each over every other file. What two
  CPU-bound processes gain on this machine (``parallel_ceiling``; shared caches, memory
  bandwidth and a virtual machine's neighbours keep it under 2): the bound for
  ``speedup_2_workers``.
* Prefect floor: a process that imports Prefect and runs an empty flow of one task against the
  same server (``prefect_floor_s``), beside a bare interpreter start (``python_start_s``): what
  any Prefect flow run costs here before it does any work. ``prefect_floor_ratio`` =
  (prefect_floor_s - python_start_s) / plain loop: the part of the overhead budget Prefect
  itself takes.
* pipeline: ``xtract run CORPUS -o OUT --workers N`` (the installed CLI code path):
  crawl, group, pool start, extraction in worker processes, one JSON document per
  group, the SQLite journal, index.parquet, Prefect task runs and artifacts.

Prefect server startup is a fixed cost paid once per machine, not per run (users run
``prefect server start`` or Prefect Cloud; a test session starts one): the benchmark
starts one server before timing, points every run at it with PREFECT_API_URL, and
reports the startup separately (``server_start_s``). Interpreter start and imports
are inside both timings.

    python bench/end_to_end.py                 # 10k mixed files, 2 rounds; last line: one JSON object
    python bench/end_to_end.py --files 2000 --repeat 1

Runs of one kind differ by 10-20 % here from minute to minute, so every round runs
each kind once (alternating their order) and the best of the rounds is compared.

overhead_ratio = (pipeline --workers 1 - plain loop) / plain loop  (target <= 0.10)
prefect_floor_ratio = (prefect_floor_s - python_start_s) / plain loop  (Prefect's own share of it)
speedup_2_workers = pipeline --workers 1 / pipeline --workers 2  (target >= 1.7)
parallel_ceiling = plain loop / plain loop x 2

and where the difference comes from: fixed_s_* (a run's seconds outside its xtract stage: start,
imports, Prefect's flow and task runs, crawl, sink, index, report), per_file_overhead_ratio (the
xtract stage against the plain loop's loop alone: the part that grows with the files),
xtract_stage_speedup_2_workers, and speedup_bound = w1 / (fixed_s_1_worker + xtract_w1 /
parallel_ceiling): what 2 workers could reach if nothing but the extraction were parallel and it
gained exactly what two plain loops gain here. speedup_bound_prefect_floor = (floor + plain loop) /
(floor + plain loop x 2), floor = prefect_floor_s - python_start_s: what a pipeline costing nothing but
Prefect's own per-run floor could reach.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from typing import Any

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from bench.make_tree import ensure  # noqa: E402

#: the project's own check of the output contract (`xtract validate`)
VALIDATE = [sys.executable, "-m", "flows.cli", "validate"]


def _extract_one(registry: Any, path: str, extension: str) -> Any:
    """The pipeline's dispatch without its bookkeeping: the registry's choice, then its fallback chain
    (``extractors.batch._run_chain``, so a text file named .fits is extracted as a table in both)."""
    from extractors.batch import _run_chain
    from extractors.physical import PHYSICAL

    mime, ex = registry.infer(path, extension)
    _, _, result = _run_chain(registry, path, extension, mime, ex, [])
    return PHYSICAL.func(path) if result is None else result


def plain_loop(root: str, part: int = 0, parts: int = 1) -> dict[str, Any]:
    """The baseline (runs in its own process): same files, same dispatch, same extractor functions.

    With ``parts`` > 1, only every ``parts``-th file starting at ``part`` (for the parallel ceiling).
    """
    from extractors.detect import split_extension
    from extractors.registry import default_registry

    registry = default_registry()
    started = time.perf_counter()
    results: list[Any] = []
    errors = 0
    seen = -1
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            seen += 1
            if seen % parts != part:
                continue
            path = os.path.join(dirpath, name)
            try:
                results.append(_extract_one(registry, path, split_extension(name)))
            except Exception as exc:  # noqa: BLE001 - a bad file is a result, as in the pipeline
                results.append({"error": f"{type(exc).__name__}: {exc}"})
                errors += 1
    return {"files": len(results), "errors": errors, "loop_s": time.perf_counter() - started}


EMPTY_FLOW = """
from prefect import flow, task

@task
def step() -> int:
    return 1

@flow(name="xtract-bench-empty")
def empty() -> int:
    return step()

empty()
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(home: str, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str, float]:
    """A Prefect server of our own (temporary PREFECT_HOME, so the user's database is untouched)."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}/api"
    senv = {**env, "PREFECT_HOME": home, "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1",
            "PREFECT_SERVER_UI_ENABLED": "false"}
    senv.pop("PREFECT_API_URL", None)
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
                             "--port", str(port), "--no-ui", "--analytics-off"], env=senv,
                            stdout=open(os.path.join(home, "server.log"), "wb"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"prefect server exited ({proc.returncode}); see {home}/server.log")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as resp:
                if resp.status == 200:
                    return proc, url, time.perf_counter() - started
        except OSError:
            time.sleep(0.5)
    proc.terminate()
    raise SystemExit("prefect server did not start within 180 s")


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


CPU_MARK = "xtract-bench-cpu-seconds "
OWN_CPU_MARK = "xtract-bench-own-cpu-seconds "


def reap(cmd: list[str]) -> int:
    """Run ``cmd`` as a child subreaper and report the CPU of every descendant on stderr's last line.

    Pool workers fork from a fork server whose children are reaped by it and which itself outlives
    the flow process by a moment: without a subreaper their CPU never reaches our rusage.
    """
    import ctypes

    try:
        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        pass  # not Linux: the CPU figure covers only what the command itself waited for
    proc = subprocess.Popen(cmd)
    _, status, own = os.wait4(proc.pid, 0)  # the command's own CPU (with what it reaped itself)
    rc = os.waitstatus_to_exitcode(status)
    print(f"{OWN_CPU_MARK}{own.ru_utime + own.ru_stime:.3f}", file=sys.stderr)
    while True:
        try:
            os.wait()
        except ChildProcessError:
            break
    print(f"{CPU_MARK}{_children_cpu():.3f}", file=sys.stderr)
    return rc


def _mark(stderr: str, mark: str) -> float:
    return float(stderr.rsplit(mark, 1)[-1].split()[0]) if mark in stderr else float("nan")


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, str, float, float]:
    """(wall seconds, stdout, CPU seconds of the process and all its descendants, of the process alone)."""
    started = time.perf_counter()
    out = subprocess.run([sys.executable, os.path.abspath(__file__), "--reap", *cmd], env=env, cwd=REPO,
                         capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({out.returncode}):\n{out.stdout[-2000:]}\n{out.stderr[-4000:]}")
    cpu = _mark(out.stderr, CPU_MARK)
    return elapsed, out.stdout, cpu, _mark(out.stderr, OWN_CPU_MARK)


def plain_in_parallel(corpus: str, parts: int, env: dict[str, str]) -> tuple[float, int]:
    """(wall seconds, files) of ``parts`` plain loops started together, each over its share of the files."""
    started = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, os.path.abspath(__file__), "--plain", corpus, str(k), str(parts)],
                              env=env, cwd=REPO, stdout=subprocess.PIPE, text=True) for k in range(parts)]
    outs = [p.communicate()[0] for p in procs]
    elapsed = time.perf_counter() - started
    if any(p.returncode for p in procs):
        raise SystemExit(f"a parallel plain loop failed: {[p.returncode for p in procs]}")
    return elapsed, sum(json.loads(o.strip().splitlines()[-1])["files"] for o in outs)


def run_pipeline(corpus: str, workers: int, env: dict[str, str], work: str, tag: str) -> dict[str, Any]:
    out_dir = os.path.join(work, f"meta-{tag}")
    secs, stdout, cpu, flow_cpu = timed([sys.executable, "-m", "flows.cli", "run", corpus, "--metadata-dir", out_dir,
                                         "--workers", str(workers), "--json"], env)
    summary = json.loads(stdout.strip().splitlines()[-1])
    return {"seconds": secs, "cpu": cpu, "flow_cpu": flow_cpu, "flow_seconds": summary["seconds"],
            "stages": summary["stage_seconds"], "out": out_dir, "summary": summary}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--reap":
        return reap(argv[1:])
    if argv and argv[0] == "--plain":
        print(json.dumps(plain_loop(argv[1], *(int(a) for a in argv[2:4]))))
        return 0
    ap = argparse.ArgumentParser(description="xtract run vs a plain loop; 1 vs 2 workers")
    ap.add_argument("--files", type=int, default=10_000, help="mixed corpus size (default 10000)")
    ap.add_argument("--repeat", type=int, default=2,
                    help="rounds of (plain, plain x 2, workers 1, workers 2); best of each kept (default 2)")
    ap.add_argument("--corpus", default=None, help="corpus directory (default: $TMPDIR/xtract-bench/mixed-N)")
    ap.add_argument("--api-url", default=None, help="use this Prefect server instead of starting one")
    ap.add_argument("--no-validate", action="store_true", help="skip the output-contract check")
    args = ap.parse_args(argv)

    corpus = args.corpus or os.path.join(tempfile.gettempdir(), "xtract-bench", f"mixed-{args.files}")
    tree = ensure(corpus, args.files, kind="mixed")
    work = tempfile.mkdtemp(prefix="xtract-bench-e2e-")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PYTHONPATH=REPO, PREFECT_SERVER_ANALYTICS_ENABLED="false", DO_NOT_TRACK="1",
               PREFECT_LOGGING_LEVEL="WARNING")
    server = None
    server_s = 0.0
    try:
        if args.api_url:
            env["PREFECT_API_URL"] = args.api_url
        else:
            os.makedirs(os.path.join(work, "prefect-home"))
            server, env["PREFECT_API_URL"], server_s = start_server(os.path.join(work, "prefect-home"), env)
        plain: list[float] = []
        plain_cpu: list[float] = []
        plain2: list[float] = []
        plain_loop_only: list[float] = []  # the loop alone, without interpreter start and imports
        floor: list[float] = []
        bare: list[float] = []
        w1: list[dict[str, Any]] = []
        w2: list[dict[str, Any]] = []
        for i in range(args.repeat):
            order = ("plain", "plain2", "floor", "w1", "w2") if i % 2 == 0 else ("w2", "w1", "floor", "plain2", "plain")
            for what in order:
                if what == "floor":
                    bare.append(timed([sys.executable, "-c", "pass"], env)[0])
                    floor.append(timed([sys.executable, "-c", EMPTY_FLOW], env)[0])
                    print(f"round {i} prefect floor: {floor[-1]:.2f}s wall (bare interpreter {bare[-1]:.2f}s)",
                          file=sys.stderr)
                elif what == "plain2":
                    secs, counted = plain_in_parallel(corpus, 2, env)
                    assert counted == tree["files"], counted
                    plain2.append(secs)
                    print(f"round {i} plain x 2: {secs:.2f}s wall", file=sys.stderr)
                elif what == "plain":
                    secs, stdout, cpu, _ = timed([sys.executable, os.path.abspath(__file__), "--plain", corpus], env)
                    counted = json.loads(stdout.strip().splitlines()[-1])
                    assert counted["files"] == tree["files"], counted
                    plain.append(secs)
                    plain_loop_only.append(counted["loop_s"])
                    plain_cpu.append(cpu)
                    print(f"round {i} plain: {secs:.2f}s wall, {cpu:.2f}s cpu", file=sys.stderr)
                else:
                    n = 1 if what == "w1" else 2
                    res = run_pipeline(corpus, n, env, work, f"{what}-{i}")
                    if res["summary"]["files_crawled"] != tree["files"]:
                        raise SystemExit(f"pipeline crawled {res['summary']['files_crawled']} of {tree['files']}")
                    if not args.no_validate:
                        timed([*VALIDATE, res["out"], "--files", str(tree["files"])], env)
                        res["validated"] = True
                    # Kept until every run is timed: this VM's ext4 has no journal, and without one ext4
                    # skips inodes freed in the last minutes when it allocates new ones, so creating files
                    # soon after deleting many costs several times more (bench/RESULTS.md): removing one
                    # run's 10k documents would tax the next run's writes, a cost of the benchmark's own making.
                    (w1 if n == 1 else w2).append(res)
                    print(f"round {i} workers {n}: {res['seconds']:.2f}s wall, {res['cpu']:.2f}s cpu", file=sys.stderr)
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
        shutil.rmtree(work, ignore_errors=True)
    best_plain = min(plain)
    best_w1 = min(w1, key=lambda r: r["seconds"])
    best_w2 = min(w2, key=lambda r: r["seconds"])
    result = {
        "files": tree["files"], "bytes": tree["bytes"], "repeat": args.repeat,
        "plain_loop_s": round(best_plain, 2),
        "pipeline_1_worker_s": round(best_w1["seconds"], 2), "pipeline_2_workers_s": round(best_w2["seconds"], 2),
        "flow_1_worker_s": best_w1["flow_seconds"], "flow_2_workers_s": best_w2["flow_seconds"],
        "server_start_s": round(server_s, 1),
        "plain_loop_x2_s": round(min(plain2), 2),
        # Decomposition: what each run pays once (start, imports, Prefect's flow and task runs, the stages
        # around extraction) and what grows with the files (the xtract stage against the plain loop's loop).
        "fixed_s_1_worker": round(best_w1["seconds"] - best_w1["stages"]["xtract"], 2),
        "fixed_s_2_workers": round(best_w2["seconds"] - best_w2["stages"]["xtract"], 2),
        "per_file_overhead_ratio": round((min(r["stages"]["xtract"] for r in w1) - min(plain_loop_only))
                                         / min(plain_loop_only), 3),
        "xtract_stage_speedup_2_workers": round(min(r["stages"]["xtract"] for r in w1)
                                                / min(r["stages"]["xtract"] for r in w2), 3),
        # Amdahl: a perfect pipeline keeps the 1-worker fixed seconds and speeds the xtract stage up by the
        # machine's own two-process gain, no more.
        "speedup_bound": round(best_w1["seconds"] / (best_w1["seconds"] - best_w1["stages"]["xtract"]
                                                     + best_w1["stages"]["xtract"] * min(plain2) / best_plain), 3),
        "overhead_ratio": round((best_w1["seconds"] - best_plain) / best_plain, 3),
        "prefect_floor_s": round(min(floor), 2), "python_start_s": round(min(bare), 2),
        "prefect_floor_ratio": round((min(floor) - min(bare)) / best_plain, 3),
        # the best any Prefect flow could do here: its floor plus the plain loop, run on 1 or on 2 processes
        "speedup_bound_prefect_floor": round((min(floor) - min(bare) + best_plain)
                                             / (min(floor) - min(bare) + min(plain2)), 3),
        "cpu_overhead_ratio": round((min(r["cpu"] for r in w1) - min(plain_cpu)) / min(plain_cpu), 3),
        # the flow process's own CPU (crawl, journal, search sync, Prefect): on 2 cores it competes with 2 workers
        "flow_process_cpu_s_1_worker": round(best_w1["flow_cpu"], 2),
        "flow_process_cpu_s_2_workers": round(best_w2["flow_cpu"], 2),
        "plain_loop_cpu_s": round(min(plain_cpu), 2), "pipeline_1_worker_cpu_s": round(min(r["cpu"] for r in w1), 2),
        "validated": all(r.get("validated") for r in w1 + w2),
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "speedup_2_workers": round(best_w1["seconds"] / best_w2["seconds"], 3),
        "parallel_ceiling": round(best_plain / min(plain2), 3),
        "all_runs_s": {"plain": [round(x, 2) for x in plain], "plain_x2": [round(x, 2) for x in plain2],
                       "w1": [round(r["seconds"], 2) for r in w1], "w2": [round(r["seconds"], 2) for r in w2]},
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
