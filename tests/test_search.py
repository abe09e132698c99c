"""Local search: real runs of the endpoint flow into a metadata dir, then queries against its index."""

from __future__ import annotations

import json
import os
import pathlib
import sqlite3
import subprocess

import pytest

from flows.endpoint_flow import xtract_endpoint
from tasks.pools.options import ExtractionOptions
from tasks.store.search import QuerySyntaxError, SearchIndex, index_path, search, update_index
from tasks.store.search_text import file_text, to_fts_query
from tests.helpers import check_contract
from xtract_blocks import XtractEndpoint


def _write_nc(path: pathlib.Path, variables: list[str]) -> None:
    import netCDF4
    import numpy as np

    path.parent.mkdir(parents=True, exist_ok=True)
    with netCDF4.Dataset(path, "w") as ds:
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
    _write_nc(root / "climate" / "model_a.nc", ["tas", "pr"])
    _write_nc(root / "climate" / "model_b.nc", ["pr"])


def _run(root: pathlib.Path, out: pathlib.Path) -> dict:
    ep = XtractEndpoint(dirs=[str(root)], local_mdata_path=str(out))
    state = xtract_endpoint(ep, extraction=ExtractionOptions(workers=1), return_state=True)
    assert state.is_completed(), state.message
    return state.result()


@pytest.fixture(scope="module")
def metadata(tmp_path_factory: pytest.TempPathFactory) -> tuple[pathlib.Path, pathlib.Path]:
    root = tmp_path_factory.mktemp("repo")
    out = tmp_path_factory.mktemp("out")
    _corpus(root)
    _run(root, out)
    return root, out


def test_query_translation_is_safe_for_punctuation_and_keeps_operators() -> None:
    assert to_fts_query("model_a.nc") == '"model_a.nc"'
    assert to_fts_query("tas OR pr") == '"tas" OR "pr"'
    assert to_fts_query("variables.name=tas") == 'text:"name tas"'
    assert to_fts_query('site="alpha beta"') == 'text:"site alpha beta"'
    assert to_fts_query("temp*") == '"temp"*'
    assert to_fts_query("path:climate units") == 'path:"climate" "units"'


def test_member_metadata_is_attributed_to_its_own_file() -> None:
    doc = {"metadata": {"tabular": {"members": {"/a.csv": {"columns": [{"name": "x"}]},
                                                "/b.csv": {"columns": [{"name": "y"}]}}}}}
    keys, text = file_text(doc, "/a.csv", None)
    assert "name x" in text and "name y" not in text
    assert keys.split() == ["tabular", "columns", "name"]


def test_the_flow_builds_the_index_and_a_variable_is_found(metadata) -> None:
    root, out = metadata
    check_contract(out, expected_files=5)
    assert os.path.exists(index_path(str(out)))
    hits = search("name=tas", str(out))
    assert [h.path for h in hits] == [str(root / "climate" / "model_a.nc")]
    assert hits[0].extractor == "netcdf" and hits[0].status == "ok"
    assert "[name tas]" in hits[0].snippet
    both = search("pr", str(out), ext=".nc")
    assert {pathlib.Path(h.path).name for h in both} == {"model_a.nc", "model_b.nc"}
    assert search("temperature", str(out))[0].path == str(root / "tables" / "weather.csv")
    assert search("spectrometer", str(out))[0].path.endswith("notes.txt")
    # prefixes are expanded from the vocabulary (an OR of words), unknown ones stay prefixes
    assert search("calib*", str(out))[0].path.endswith("notes.txt")
    assert search("spectro* OR zzunknown*", str(out))[0].path.endswith("notes.txt")


def test_filters_narrow_results(metadata) -> None:
    root, out = metadata
    assert {pathlib.Path(h.path).name for h in search("", str(out), extractor="tabular")} == {"weather.csv",
                                                                                                "sales.csv"}
    assert search("name", str(out), ext="csv", min_size=10**9) == []
    assert len(search("", str(out), path_prefix=str(root / "climate"))) == 2
    assert search("", str(out), newer_than="2999-01-01") == []
    assert len(search("", str(out), older_than="2999-01-01", limit=3)) == 3
    assert {h.status for h in search("", str(out), status="ok")} == {"ok"}


def test_bad_query_syntax_is_a_clear_error(metadata) -> None:
    _, out = metadata
    with pytest.raises(QuerySyntaxError, match="cannot parse"):
        search("tas OR", str(out))


@pytest.mark.slow
def test_rerun_updates_only_what_changed_and_drops_what_left(tmp_path: pathlib.Path) -> None:
    root, out = tmp_path / "repo", tmp_path / "out"
    _corpus(root)
    _run(root, out)
    with SearchIndex(index_path(str(out))) as index:
        kept_id = index.db.execute("SELECT id FROM docs WHERE path LIKE '%sales.csv'").fetchone()[0]
    (root / "notes.txt").unlink()
    (root / "tables" / "weather.csv").write_text("humidity,site\n0.5,gamma\n")
    os.utime(root / "tables" / "weather.csv", (1e9, 1e9))
    _write_nc(root / "climate" / "model_c.nc", ["tasmax"])
    summary = _run(root, out)
    assert summary["skipped"] == 3
    check_contract(out, expected_files=5)
    assert update_index(str(out)).groups_indexed == 0  # the flow already synced
    with SearchIndex(index_path(str(out))) as index:
        assert index.count() == 5
        # the unchanged file kept its row: the index was updated, not rebuilt
        assert index.db.execute("SELECT id FROM docs WHERE path LIKE '%sales.csv'").fetchone()[0] == kept_id
    assert search("spectrometer", str(out)) == []
    assert search("temperature", str(out)) == []
    assert search("humidity", str(out))[0].path.endswith("weather.csv")
    assert search("name=tasmax", str(out))[0].path.endswith("model_c.nc")


def test_batches_are_indexed_as_they_are_journalled_without_a_full_merge(tmp_path: pathlib.Path) -> None:
    """The run's mid-run indexing covers exactly what the final full merge would have indexed."""
    from tasks.store.search import SyncWhileRunning
    from tests.reliability_plugin import run_pipeline

    root, out = tmp_path / "repo", tmp_path / "out"
    _corpus(root)
    for i in range(12):
        (root / "more" / f"t{i}.csv").parent.mkdir(parents=True, exist_ok=True)
        (root / "more" / f"t{i}.csv").write_text(f"reading_{i},site\n{i},alpha\n")
    indexed_mid_run: list[int] = []

    def on_progress(_counters: object) -> None:
        sync()
        if sync.syncs:
            with SearchIndex(index_path(str(out))) as index:
                indexed_mid_run.append(index.count())

    sync = SyncWhileRunning(str(out), min_interval_s=0)
    run, _ = run_pipeline(root, out, workers=1, batch=3, on_record=sync.note, on_progress=on_progress,
                          progress_every_s=0)
    assert run.counters.fx_success == 17 and sync.syncs >= 2 and sync.pending == []
    assert indexed_mid_run and indexed_mid_run[-1] == 17  # all of it before any full sync ran
    assert update_index(str(out)).groups_indexed == 0  # the full merge finds nothing left to do
    assert search("reading_7", str(out))[0].path.endswith("t7.csv")
    assert search("name=tas", str(out))[0].path.endswith("model_a.nc")


def test_a_lost_index_is_rebuilt_on_demand_and_a_missed_sync_heals(metadata) -> None:
    _, out = metadata
    for suffix in ("", "-wal", "-shm"):
        pathlib.Path(index_path(str(out)) + suffix).unlink(missing_ok=True)
    assert search("name=tas", str(out))[0].path.endswith("model_a.nc")
    # a group the index lost (e.g. a crash between sink and sync) comes back on the next sync
    with SearchIndex(index_path(str(out))) as index:
        gid = index.db.execute("SELECT group_id FROM docs WHERE path LIKE '%model_b.nc'").fetchone()[0]
        index.db.execute("DELETE FROM docs WHERE group_id=?", (gid,))
        index.db.execute("DELETE FROM groups WHERE group_id=?", (gid,))
    stats = update_index(str(out))
    assert (stats.groups_indexed, stats.groups_removed) == (1, 0)
    assert len(search("pr", str(out), ext="nc")) == 2


@pytest.mark.slow
def test_cli_prints_json_lines_and_exits_1_without_matches(metadata, xtract_bin, subprocess_env) -> None:
    _, out = metadata
    proc = subprocess.run([*xtract_bin, "search", "name=tas", "--metadata-dir", str(out), "--json"],
                          capture_output=True, text=True, env=subprocess_env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [pathlib.Path(r["path"]).name for r in rows] == ["model_a.nc"]
    assert {"path", "score", "snippet", "size", "extension", "extractor", "status"} <= set(rows[0])
    proc = subprocess.run([*xtract_bin, "search", "zzzznothing", "--metadata-dir", str(out)],
                          capture_output=True, text=True, env=subprocess_env, timeout=120)
    assert proc.returncode == 1 and "no matches" in proc.stderr


def test_index_is_plain_sqlite_with_fts5(metadata) -> None:
    _, out = metadata
    db = sqlite3.connect(index_path(str(out)))
    try:
        assert db.execute("SELECT count(*) FROM fts WHERE fts MATCH 'tas'").fetchone()[0] == 1
    finally:
        db.close()


def test_broad_queries_rank_a_bounded_window_and_say_so(metadata) -> None:
    _, out = metadata
    with SearchIndex(index_path(str(out)), rank_window=1) as index:
        hits = index.search("pr", ext="nc")
        assert hits.windowed and len(hits) == 1
    full = search("pr", str(out), ext="nc")
    assert not full.windowed and len(full) == 2


def test_bulk_indexing_replaces_moved_files_and_never_reuses_an_id(tmp_path) -> None:
    def row(path: str, gid: str) -> tuple:
        return (path, gid, 1, 1.0, "csv", "text/csv", "tabular", "ok", None)

    with SearchIndex(str(tmp_path / "i.sqlite")) as index:
        assert index.add_files([(row("/a.csv", "g1"), {"metadata": {"tabular": {"columns": ["alpha"]}}}),
                                (row("/b.csv", "g1"), None)]) == 2
        ids = [i for (i,) in index.db.execute("SELECT id FROM docs ORDER BY id")]
        index.db.execute("DELETE FROM docs WHERE id=?", (ids[-1],))  # the newest id is free again
        index.db.execute("DELETE FROM fts WHERE rowid=?", (ids[-1],))
        # /a.csv moves to group g2 (listed twice: the last wins), with a new document
        assert index.add_files([(row("/a.csv", "g2"), None), (row("/a.csv", "g2"), {"metadata": {"x": "beta"}})]) == 1
        assert index.db.execute("SELECT group_id, id > ? FROM docs", (ids[-1],)).fetchall() == [("g2", 1)]
        assert index.db.execute("SELECT count(*) FROM fts").fetchone() == (1,)
        assert [h.path for h in index.search("beta")] == ["/a.csv"] and not index.search("alpha")


def test_a_first_build_merges_wide_then_leaves_fts5_defaults(tmp_path) -> None:
    """A first build lets FTS5 merge 16 segments at a time; later syncs of the same index merge 4 (the default)."""
    from tasks.store.search_write import BULK_AUTOMERGE, DEFAULT_AUTOMERGE, Prepared, SyncStats

    def automerge(index: SearchIndex) -> int | None:
        row = index.db.execute("SELECT v FROM fts_config WHERE k='automerge'").fetchone()
        return row and row[0]

    rows = [(f"/d/f{i}.csv", f"g{i}", i, 1.0, "csv", None, "tabular", "ok", None) for i in range(50)]
    with SearchIndex(str(tmp_path / "i.sqlite")) as index:
        assert index.db.execute("PRAGMA page_size").fetchone()[0] == 8192  # a new file
        seen = []

        def chunks():
            seen.append(automerge(index))  # while the build runs
            chunk = Prepared(reindex=[(r[1], "fp", "run", True) for r in rows])
            chunk.add_group("", {"metadata": {"tabular": {"columns": [{"name": "alpha"}]}}}, rows)
            yield chunk

        stats = index.build(chunks(), SyncStats())
        seen.append(automerge(index))
        assert stats.files_indexed == 50 and seen == [BULK_AUTOMERGE, DEFAULT_AUTOMERGE]
        assert len(index.search("alpha", limit=100)) == 50
        assert index.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
