"""`xtract query`: SQL over the files and facts datasets of a real run; the datasets read by every reader."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import pandas as pd
import pyarrow.dataset as pads
import pytest

from flows.endpoint_flow import xtract_endpoint
from tasks.pools.options import ExtractionOptions
from tasks.store import dataset
from tasks.store.facts import FactColumns, doc_facts
from tasks.store.query import run_query
from tests.helpers import check_contract
from xtract_blocks import XtractEndpoint
from xtract_blocks.errors import QuerySyntaxError

XTRACT = [sys.executable, "-m", "flows.cli"]


def _write_nc(path: pathlib.Path, variables: list[str], year: int) -> None:
    import netCDF4
    import numpy as np

    path.parent.mkdir(parents=True, exist_ok=True)
    with netCDF4.Dataset(path, "w") as ds:
        ds.time_coverage_start = f"{year}-01-01"
        ds.time_coverage_end = f"{year}-12-31"
        ds.createDimension("time", 3)
        for name in variables:
            var = ds.createVariable(name, "f4", ("time",))
            var.units = "K"
            var[:] = np.arange(3, dtype="f4")


def _corpus(root: pathlib.Path) -> None:
    (root / "tables").mkdir(parents=True)
    (root / "tables" / "weather.csv").write_text("temperature,site\n1.5,alpha\n2.5,beta\n")
    (root / "tables" / "sales.csv").write_text("price,item\n3,apple\n4,pear\n")
    (root / "notes.txt").write_text("calibration log for the spectrometer\n")
    _write_nc(root / "climate" / "model_a.nc", ["tas", "pr"], 2020)
    _write_nc(root / "climate" / "model_b.nc", ["tas"], 2019)
    _write_nc(root / "climate" / "model_c.nc", ["pr"], 2020)


def _run(root: pathlib.Path, out: pathlib.Path) -> None:
    ep = XtractEndpoint(dirs=[str(root)], local_mdata_path=str(out))
    state = xtract_endpoint(ep, extraction=ExtractionOptions(workers=1), return_state=True)
    assert state.is_completed(), state.message


@pytest.fixture(scope="module")
def metadata(tmp_path_factory: pytest.TempPathFactory) -> tuple[pathlib.Path, pathlib.Path]:
    root = tmp_path_factory.mktemp("repo")
    out = tmp_path_factory.mktemp("out")
    _corpus(root)
    _run(root, out)
    return root, out


def test_the_index_and_facts_are_datasets_every_reader_takes(metadata) -> None:
    import duckdb
    import polars as pl

    root, out = metadata
    idx = check_contract(out, expected_files=6)
    assert (out / "index.parquet").is_dir() and (out / "facts.parquet").is_dir()
    parts = sorted(p.name for p in (out / "index.parquet").iterdir())
    assert parts == ["all"], parts  # an unsharded run writes one part, named for the whole repository
    assert pads.dataset(out / "index.parquet").count_rows() == len(idx)
    assert pl.scan_parquet(out / "index.parquet" / "**" / "*.parquet").collect().height == len(idx)
    assert duckdb.sql(f"SELECT count(*) FROM read_parquet('{out}/facts.parquet/**/*.parquet')").fetchall()[0][0] > 10
    facts = pd.read_parquet(out / "facts.parquet")
    assert list(facts.columns) == ["path", "group_id", "extractor", "key", "value_text", "value_num"]
    assert set(facts["path"].dropna()) <= set(idx["path"])


def test_sql_answers_questions_about_files_and_nested_metadata(metadata) -> None:
    root, out = metadata
    by_ext = run_query(str(out), "SELECT extension, count(*) AS n, sum(size) AS bytes FROM files "
                                 "GROUP BY 1 ORDER BY 1")
    assert by_ext.columns == ["extension", "n", "bytes"]
    assert {r[0]: r[1] for r in by_ext.rows} == {"csv": 2, "nc": 3, "txt": 1}
    csv_with = run_query(str(out), "SELECT DISTINCT path FROM facts WHERE key = 'tabular.columns.name' "
                                   "AND value_text = 'temperature'")
    assert csv_with.rows == [(str(root / "tables" / "weather.csv"),)]
    keys = {r[0] for r in run_query(str(out), "SELECT DISTINCT key FROM facts WHERE extractor='netcdf'").rows}
    assert "netcdf.variables.name" in keys, keys
    start = next(k for k in keys if k.endswith("time_coverage_start"))
    tas_2020 = run_query(str(out), f"""
        SELECT v.path FROM facts v JOIN facts t ON t.path = v.path
        WHERE v.key = 'netcdf.variables.name' AND v.value_text = 'tas'
          AND t.key = '{start}' AND t.value_text BETWEEN '2020-01-01' AND '2020-12-31'""")
    assert tas_2020.rows == [(str(root / "climate" / "model_a.nc"),)]
    with pytest.raises(QuerySyntaxError, match="query failed"):
        run_query(str(out), "SELEC path FROM files")


def test_the_cli_prints_json_csv_and_one_line_for_bad_sql(metadata, subprocess_env) -> None:
    _, out = metadata
    sql = "SELECT extension, count(*) AS n FROM files GROUP BY 1 ORDER BY 1"
    res = subprocess.run([*XTRACT, "query", sql, "-o", str(out), "--json"], capture_output=True, text=True,
                         timeout=120, env=subprocess_env)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == [{"extension": "csv", "n": 2}, {"extension": "nc", "n": 3},
                                      {"extension": "txt", "n": 1}]
    res = subprocess.run([*XTRACT, "query", sql, "-o", str(out), "--csv"], capture_output=True, text=True,
                         timeout=120, env=subprocess_env)
    assert res.stdout.splitlines() == ["extension,n", "csv,2", "nc,3", "txt,1"]
    res = subprocess.run([*XTRACT, "query", "SELECT nope FROM files", "-o", str(out)], capture_output=True,
                         text=True, timeout=120, env=subprocess_env)
    assert res.returncode != 0
    assert res.stderr.count("\n") == 1 and "nope" in res.stderr, res.stderr


def test_facts_follow_reruns_and_a_legacy_single_file_index_still_reads(tmp_path) -> None:
    root, out = tmp_path / "repo", tmp_path / "out"
    _corpus(root)
    _run(root, out)
    (root / "tables" / "weather.csv").write_text("humidity,site\n1,alpha\n")
    (root / "tables" / "sales.csv").unlink()
    _run(root, out)
    names = {r[0] for r in run_query(str(out), "SELECT value_text FROM facts WHERE key='tabular.columns.name'").rows}
    assert names == {"humidity", "site"}  # the old columns and the deleted file's facts are gone
    segments = list((out / "facts.parquet" / "all").glob("*.parquet"))
    assert len(segments) <= 2, segments  # rewritten segments do not pile up
    # an index from before datasets (one file) is read by every reader, then replaced by the next run
    table = dataset.read_table(str(out / "index.parquet"))
    dataset.remove(str(out / "index.parquet"))
    import pyarrow.parquet as pq

    pq.write_table(table, out / "index.parquet")
    assert run_query(str(out), "SELECT count(*) FROM files", refresh=False).rows == [(5,)]
    check_contract(out, expected_files=5)
    _run(root, out)
    assert (out / "index.parquet").is_dir()
    check_contract(out, expected_files=5)


def test_doc_facts_key_paths_members_and_numbers() -> None:
    cols = FactColumns()
    doc = {"metadata": {"netcdf": {"variables": [{"name": "tas", "shape": [3]}], "ok": True, "nan": float("nan")},
                        "multi": {"members": {"/a": {"rows": 2}}, "shared": "x"}}}
    doc_facts(doc, "g1", ["/a", "/b"], cols)
    rows = list(zip(cols.path, cols.key, cols.value_text, cols.value_num, strict=True))
    assert (None, "netcdf.variables.name", "tas", None) in rows
    assert (None, "netcdf.variables.shape", "3", 3.0) in rows
    assert (None, "netcdf.ok", "true", None) in rows
    assert (None, "netcdf.nan", "nan", None) in rows
    assert ("/a", "multi.rows", "2", 2.0) in rows
    assert (None, "multi.shared", "x", None) in rows


def test_a_shard_writes_only_its_own_part_and_a_failed_write_keeps_the_old_one(tmp_path) -> None:
    import pyarrow as pa

    from tasks.store.journal import INDEX_SCHEMA

    def rows(*paths: str) -> pa.Table:
        n = len(paths)
        return pa.table({"path": list(paths), "size": [1] * n, "mtime": [1.0] * n, "extension": ["csv"] * n,
                         "mime": [None] * n, "extractor": ["tabular"] * n, "group_id": list(paths),
                         "status": ["ok"] * n, "error": [None] * n}, schema=INDEX_SCHEMA)

    index = str(tmp_path / "index.parquet")
    for shard, paths in (("shard-000", ("/a", "/b")), ("shard-001", ("/c",))):
        with dataset.PartWriter(index, shard, INDEX_SCHEMA) as w:
            w.write_batch(rows(*paths))
            w.commit()
    with dataset.PartWriter(index, "shard-001", INDEX_SCHEMA, max_rows_per_file=1) as w:
        w.write_batch(rows("/c", "/d"))
        assert w.commit() == 2
    assert sorted(pd.read_parquet(index)["path"]) == ["/a", "/b", "/c", "/d"]
    assert len(dataset.data_files(index)) == 3  # shard-000's file untouched, shard-001 rewritten as 2 files
    with pytest.raises(RuntimeError), dataset.PartWriter(index, "shard-000", INDEX_SCHEMA) as w:
        w.write_batch(rows("/x"))
        raise RuntimeError("disk full")
    assert sorted(pd.read_parquet(index)["path"]) == ["/a", "/b", "/c", "/d"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # nothing half-written stays
    with dataset.PartWriter(index, dataset.WHOLE, INDEX_SCHEMA) as w:  # a whole-repository run owns it all
        w.write_batch(rows("/z"))
        w.commit(exclusive=True)
    assert sorted(p.name for p in (tmp_path / "index.parquet").iterdir()) == ["all"]
    assert list(pd.read_parquet(index)["path"]) == ["/z"]
    with pytest.raises(ValueError):
        dataset.check_part_name("../x")


def _journal(out: pathlib.Path, names: dict[str, str], run_id: str) -> None:
    """A metadata directory's journal and group files without a flow: group g<i> is file /d/<i>.csv."""
    import json as _json

    from tasks.store.journal import StateStore
    from tasks.store.layout import MetadataDir

    layout = MetadataDir.of(str(out))
    pathlib.Path(layout.groups).mkdir(parents=True, exist_ok=True)
    results = []
    for gid, column in names.items():
        pathlib.Path(layout.group_file(gid)).write_text(_json.dumps(
            {"group_id": gid, "metadata": {"tabular": {"columns": [{"name": column}]}}}))
        results.append({"group_id": gid, "fingerprint": f"{gid}:{column}", "extractor": "tabular",
                        "files": [{"path": f"/d/{gid}.csv", "size": 1, "mtime": 1.0, "extension": "csv",
                                   "mime": None, "extractor": "tabular", "status": "ok", "error": None}]})
    state = StateStore(layout.state)
    try:
        state.record(results, run_id)
        state.forget_unseen(run_id)
        state.write_index(layout.index, run_id)
    finally:
        state.close()


def test_facts_segments_stay_few_and_exact_over_many_incremental_syncs(tmp_path) -> None:
    from tasks.store.facts import MAX_SEGMENTS
    from tasks.store.search import update_index

    out = tmp_path / "out"
    names = {f"g{i:03d}": "alpha" for i in range(60)}
    for run in range(8):
        names[f"g{run:03d}"] = f"col{run}"  # one group changes per run
        names.pop(f"g{59 - run:03d}", None)  # and one leaves
        _journal(out, names, f"r{run}")
        update_index(str(out))
        got = dict(run_query(str(out), "SELECT group_id, value_text FROM facts", refresh=False).rows)
        assert got == names
        assert len(list((out / "facts.parquet" / "all").glob("seg-*.parquet"))) <= MAX_SEGMENTS + 1
    stats = update_index(str(out))
    assert stats.facts_groups == 0  # nothing changed: no group file read again
    (out / "facts.parquet" / "all").rename(tmp_path / "gone")  # deleted by hand: rebuilt from the group files
    update_index(str(out))
    assert dict(run_query(str(out), "SELECT group_id, value_text FROM facts", refresh=False).rows) == names
