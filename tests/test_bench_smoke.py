"""The benchmark scripts run end to end at a tiny size and keep their JSON contract.

Timings are not checked (machines are shared and noisy); what is checked is that each
script works on real files, counts what it should, and prints its last line as one
JSON object with the documented keys.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

BENCH = REPO / "bench"


def run_bench(script: str, *args: str, env: dict[str, str] | None = None, timeout: int = 300) -> dict:
    out = subprocess.run([sys.executable, str(BENCH / script), *args], cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=timeout, check=False)
    assert out.returncode == 0, f"{script} failed:\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}"
    last = out.stdout.strip().splitlines()[-1]
    return json.loads(last)


def tree_digest(root: str) -> str:
    h = hashlib.sha1()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            p = os.path.join(dirpath, name)
            st = os.stat(p)
            h.update(f"{os.path.relpath(p, root)}\0{st.st_size}\0{int(st.st_mtime)}\0".encode())
            with open(p, "rb") as fh:
                h.update(fh.read())
    return h.hexdigest()


def test_make_tree_is_deterministic_and_exact(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for root in (a, b):
        info = run_bench("make_tree.py", str(root), "--files", "250", "--kind", "mixed")
        assert info["files"] == 250 and not info["reused"]
    assert sum(len(f) for _, _, f in os.walk(a)) == 250
    assert tree_digest(str(a)) == tree_digest(str(b))
    again = run_bench("make_tree.py", str(a), "--files", "250", "--kind", "mixed")
    assert again["reused"] is True  # the stamp saves rebuilding big trees
    exts = {os.path.splitext(f)[1] for _, _, fs in os.walk(a) for f in fs}
    assert {".csv", ".txt", ".json", ""} <= exts


def test_crawl_bench_contract(tmp_path):
    res = run_bench("crawl.py", "--files", "300", "--repeat", "1", "--tree", str(tmp_path / "tree"))
    assert res["files"] == 300
    for key in ("ours_files_per_s", "find_files_per_s", "ratio"):
        assert res[key] > 0, key
    assert res["ratio"] == pytest.approx(res["ours_files_per_s"] / res["find_files_per_s"], rel=0.01)


def test_crawl_memory_bench_contract(tmp_path):
    res = run_bench("crawl_memory.py", "--files", "300", "--tree", str(tmp_path / "tree"))
    assert res["files"] == 300
    assert 0 < res["rss_after_imports_mb"] <= res["peak_rss_mb"]
    assert res["target_mb"] == 300


def test_extract_formats_bench_contract(tmp_path):
    res = run_bench("extract_formats.py", "--files", "2", "--repeat", "1", "--csv-mb", "0.5", "--big-mb", "1",
                    "--dir", str(tmp_path))
    formats = res["formats"]
    assert {"csv", "txt", "json", "bin"} <= set(formats)
    for name, f in formats.items():
        assert f["files"] == 2 and f["files_per_s"] > 0 and f["errors"] == 0, name
        assert f["expected"] in f["extractor"].split(","), name  # each sample reaches its own extractor
    assert res["csv"]["rows"] > 1000 and res["csv_big"]["rows"] > res["csv"]["rows"]
    assert res["csv_big"]["peak_rss_mb"] > 0 and res["csv_big"]["mb_per_s"] > 0
    assert os.listdir(tmp_path) == []  # samples are cleaned up


@pytest.mark.slow
def test_end_to_end_bench_contract(tmp_path, subprocess_env):
    api = subprocess_env["PREFECT_API_URL"]
    res = run_bench("end_to_end.py", "--files", "60", "--repeat", "1", "--corpus", str(tmp_path / "corpus"),
                    "--api-url", api, env=subprocess_env, timeout=400)
    assert res["files"] == 60
    assert res["validated"] is True  # every pipeline run's output passed the contract validator
    for key in ("overhead_ratio", "speedup_2_workers", "plain_loop_s", "pipeline_1_worker_s", "pipeline_2_workers_s"):
        assert key in res, key
    assert res["speedup_2_workers"] > 0 and res["plain_loop_s"] > 0
    assert res["parallel_ceiling"] > 0 and len(res["all_runs_s"]["plain_x2"]) == 1
    assert res["speedup_bound"] > 0 and res["fixed_s_1_worker"] > 0


def test_search_bench_contract():
    res = run_bench("search.py", "--records", "3000", "--repeat", "1")
    assert res["records"] == 3000
    for key in ("build_seconds", "peak_rss_mb", "query_p95_ms", "fts5_anchor_seconds", "facts_seconds"):
        assert res[key] > 0, key
    assert res["facts_rows"] > 3000  # several leaves per record


def test_globus_crawl_bench_contract_on_a_synthetic_tree():
    res = run_bench("globus_crawl.py", "--synthetic", "--files", "3000", "--dirs", "40", "--latency-ms", "0",
                    "--no-sequential", "--group")
    assert res["files"] == 3000 and res["groups"] == 3000 and res["synthetic"] is True
    assert res["peak_rss_mb"] >= res["peak_rss_after_crawl_mb"] > 0


@pytest.mark.slow
def test_scale_bench_contract():
    res = run_bench("scale.py", "--files", "60", "--latency", "0.01", "--workers", "1", "2", timeout=600)
    assert res["files"] == 60 and res["workers"] == [1, 2]
    assert set(res["xtract_s"]) == {"1", "2"} and res["efficiency_at_2"] > 0


@pytest.mark.slow
def test_lost_server_bench_contract(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"} | {"TMPDIR": str(tmp_path)}
    res = run_bench("lost_server.py", "--files", "300", "--repeat", "1", env=env, timeout=900)
    assert res["files"] == 300 and res["alive_groups_per_s"] > 0 and res["lost_groups_per_s"] > 0
    assert res["lost_rc"] == [3]
