"""A Zarr store (a directory tree) is ONE group under every grouper, so the zarr extractor sees it whole.

Real stores written by the zarr library (v2, v2 with "/" chunk keys, v3 with nested groups), beside
ordinary files and Zarr-shaped names outside any store; grouped through ``group_spool`` and through a
real ``xtract run``.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zarr

from extractors.registry import default_registry
from tasks.crawl import crawl_to_spool
from tasks.group import _VECTOR_KEYS, GROUPERS, _group_columnar, _group_rows, group_id_of, group_spool, iter_groups
from tasks.habitats.local_crawl import LocalCrawler
from tasks.store.records import CRAWL_SCHEMA, SpoolWriter
from tests.helpers import check_contract, write_csv

REPO = pathlib.Path(__file__).resolve().parents[1]


def _tree(root: pathlib.Path) -> dict[str, list[str]]:
    """Three stores and ordinary files; returns each store root's files (sorted) and the other files."""
    g2 = zarr.open_group(str(root / "v2.zarr"), mode="w", zarr_format=2, attributes={"title": "v2 store"})
    x = g2.create_array("a/x", shape=(10, 10), chunks=(5, 5), dtype="f4", attributes={"units": "K"})
    x[:] = 1.5
    y = g2.create_array("a/b/y", shape=(6,), chunks=(2,), dtype="i2")
    y[:] = 7
    g3 = zarr.open_group(str(root / "deep" / "v3.zarr"), mode="w", zarr_format=3, attributes={"title": "v3 store"})
    t = g3.create_array("sea/temp", shape=(4, 6), chunks=(2, 3), dtype="f8", dimension_names=["lat", "lon"])
    t[:] = 2.0
    s = zarr.create_array(str(root / "slash.zarr"), shape=(4, 4), chunks=(2, 2), dtype="u1", zarr_format=2,
                          chunk_key_encoding={"name": "v2", "separator": "/"})
    s[:] = 3
    write_csv(root / "t.csv")
    write_csv(root / "v2.zarr" / "notes.csv")  # a non-Zarr name inside a store: grouped as usual
    (root / "versions").mkdir()
    (root / "versions" / "1.0").write_text("not a chunk\n")  # a chunk-shaped name outside any store
    (root / "0").mkdir()
    (root / "0" / "0.1").write_text("not a chunk either\n")
    stores: dict[str, list[str]] = {}
    for name in ("v2.zarr", "deep/v3.zarr", "slash.zarr"):
        top = root / name
        stores[str(top)] = sorted(os.path.join(d, f) for d, _, fs in os.walk(top) for f in fs
                                  if f != "notes.csv")
    others = sorted(str(p) for p in (root / "t.csv", root / "v2.zarr" / "notes.csv", root / "versions" / "1.0",
                                      root / "0" / "0.1"))
    return {**stores, "": others}


def _groups(spool: str) -> list[dict]:
    return list(iter_groups(spool))


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("zarr") / "data"
    root.mkdir()
    expected = _tree(root)
    crawl = str(root.parent / "crawl.parquet")
    crawl_to_spool(LocalCrawler(), [str(root)], crawl, batch_size=3)
    return root, expected, crawl


@pytest.mark.parametrize("grouper", sorted(GROUPERS))
def test_one_group_per_store_under_every_grouper(tree, tmp_path, grouper):
    root, expected, crawl = tree
    counts = group_spool(crawl, str(tmp_path / "g.parquet"), grouper)
    groups = _groups(str(tmp_path / "g.parquet"))
    paths = [f["path"] for g in groups for f in g["files"]]
    assert sorted(paths) == sorted(p for ps in expected.values() for p in ps)  # every file once
    assert len(paths) == len(set(paths)) == counts["files"]
    assert counts["groups"] == len(groups) == len({g["group_id"] for g in groups})  # each group's rows together
    by_gid = {g["group_id"]: sorted(f["path"] for f in g["files"]) for g in groups}
    for store, files in expected.items():
        if not store:
            continue
        gid = group_id_of(files)
        assert by_gid.get(gid) == files, f"{store} is not one group under {grouper}"
        g = next(g for g in groups if g["group_id"] == gid)
        assert g["extractor"] == "zarr" and {f["mime"] for f in g["files"]} == {"application/x-zarr"}
        assert [f["path"] for f in g["files"]] == files  # path order inside the group
    for other in expected[""]:  # no ordinary file joins a store's group
        gid = next(g for g, ps in by_gid.items() if other in ps)
        assert all(not p.startswith(tuple(s + "/" for s in expected if s)) or p.endswith(".csv") for p in by_gid[gid])
    assert counts["by_extractor"]["zarr"] == sum(len(v) for k, v in expected.items() if k)


@pytest.mark.parametrize("grouper", sorted(GROUPERS))
def test_columnar_equals_rows_with_stores_and_any_crawl_order(tree, tmp_path, grouper):
    """Ids and fingerprints do not depend on how the crawl interleaved the stores' directories."""
    root, _, crawl = tree
    registry = default_registry()
    fn = GROUPERS[grouper]
    fast = _group_columnar(crawl, str(tmp_path / "fast.parquet"), _VECTOR_KEYS[fn], registry)
    slow = _group_rows(crawl, str(tmp_path / "slow.parquet"), fn, registry)
    assert fast == slow
    assert pq.read_table(tmp_path / "fast.parquet").equals(pq.read_table(tmp_path / "slow.parquet"))

    # the same rows, directories in reverse order (a helper walker's interleaving): the same groups
    table = pq.read_table(crawl)
    dirs = [os.path.dirname(p) for p in table.column("path").to_pylist()]
    order = sorted(range(len(dirs)), key=lambda i: (-sorted(set(dirs), key=dirs.index).index(dirs[i]), i))
    with SpoolWriter(str(tmp_path / "shuffled.parquet"), CRAWL_SCHEMA) as w:
        w.write_batch(table.take(pa.array(order)).combine_chunks().to_batches()[0])
    again = _group_columnar(str(tmp_path / "shuffled.parquet"), str(tmp_path / "again.parquet"), _VECTOR_KEYS[fn],
                            registry)
    assert again == fast

    def groups_of(spool):
        return {(g["group_id"], g["fingerprint"], tuple(sorted(f["path"] for f in g["files"])))
                for g in _groups(spool)}

    assert groups_of(str(tmp_path / "again.parquet")) == groups_of(str(tmp_path / "fast.parquet"))


def test_a_store_too_large_to_hold_is_written_per_directory(tree, tmp_path):
    """Past ``hold_files`` a store's rows go out as they come, one part per directory, the same both ways."""
    _, expected, crawl = tree
    registry = default_registry()
    store = str(next(k for k in expected if k.endswith("v2.zarr")))
    fast = _group_columnar(crawl, str(tmp_path / "fast.parquet"), "dir", registry, hold_files=5)
    slow = _group_rows(crawl, str(tmp_path / "slow.parquet"), GROUPERS["directory"], registry, hold_files=5)
    assert fast == slow
    got = {g["group_id"]: [f["path"] for f in g["files"]] for g in _groups(str(tmp_path / "fast.parquet"))}
    assert got == {g["group_id"]: [f["path"] for f in g["files"]] for g in _groups(str(tmp_path / "slow.parquet"))}
    in_store = [ps for ps in got.values() if ps[0].startswith(store + "/") and not ps[0].endswith(".csv")]
    assert sorted(p for ps in in_store for p in ps) == expected[store]
    assert sorted(os.path.dirname(ps[0]) for ps in in_store) == sorted(
        {os.path.dirname(p) for p in expected[store]})  # one part per directory of the store
    assert all(len({os.path.dirname(p) for p in ps}) == 1 for ps in in_store)


@pytest.mark.slow
def test_a_store_of_9000_chunks_in_slices_and_past_the_hold(tmp_path):
    """More rows than one hashing slice (8,192) and more than ``hold_files``: the same groups as the reference."""
    root = tmp_path / "data"
    a = zarr.create_array(str(root / "many.zarr"), shape=(90, 100), chunks=(1, 1), dtype="u1", zarr_format=2)
    a[:] = 1
    write_csv(root / "t.csv")
    crawl = str(tmp_path / "crawl.parquet")
    crawl_to_spool(LocalCrawler(), [str(root)], crawl)
    registry = default_registry()
    files = sorted(str(p) for p in (root / "many.zarr").iterdir())
    assert len(files) == 9002
    for hold in (100_000, 3_000):
        fast = _group_columnar(crawl, str(tmp_path / "fast.parquet"), "dir", registry, hold_files=hold)
        slow = _group_rows(crawl, str(tmp_path / "slow.parquet"), GROUPERS["directory"], registry, hold_files=hold)
        assert fast == slow
        got = {(g["group_id"], g["fingerprint"], tuple(f["path"] for f in g["files"]))
               for g in _groups(str(tmp_path / "fast.parquet"))}
        assert got == {(g["group_id"], g["fingerprint"], tuple(f["path"] for f in g["files"]))
                       for g in _groups(str(tmp_path / "slow.parquet"))}
        parts = sorted(list(ps) for _, _, ps in got if ps[0].startswith(str(root / "many.zarr")))
        assert [p for ps in parts for p in ps] == files  # split_large's consecutive parts of the one directory
        assert [len(ps) for ps in parts] == [1000] * 9 + [2]
        assert all(gid == group_id_of(list(ps)) for gid, _, ps in got)


@pytest.mark.slow
@pytest.mark.parametrize("grouper", sorted(GROUPERS))
def test_xtract_run_describes_each_store_once(tmp_path, subprocess_env, grouper):
    root = tmp_path / "data"
    root.mkdir()
    expected = _tree(root)
    out = tmp_path / "out"
    run = subprocess.run([sys.executable, "-m", "flows.cli", "run", str(root), "-o", str(out), "-q", "--workers",
                          "1", "--grouper", grouper], env=subprocess_env, cwd=REPO, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    n = sum(len(v) for v in expected.values())
    idx = check_contract(out, expected_files=n)
    for store, files in expected.items():
        if not store:
            continue
        gids = set(idx.loc[idx["path"].isin(files), "group_id"])
        assert len(gids) == 1, f"{store} split into {len(gids)} groups"
        doc = json.loads((out / "groups" / f"{gids.pop()}.json").read_text())
        assert sorted(f["path"] for f in doc["files"]) == files
        assert set(idx.loc[idx["path"].isin(files), "status"]) == {"ok"}
        described = [m for m in _metadata_values(doc) if m.get("format") == "zarr" and m.get("root") == store]
        assert len(described) == 1, doc
        whole = described[0]
        if store.endswith("v2.zarr"):
            assert whole["zarr_format"] == 2 and whole["attributes"] == {"title": "v2 store"}
            assert {a["path"]: a["shape"] for a in whole["arrays"]} == {"/a/x": [10, 10], "/a/b/y": [6]}
        elif store.endswith("v3.zarr"):
            assert whole["zarr_format"] == 3 and whole["attributes"] == {"title": "v3 store"}
            (temp,) = whole["arrays"]
            assert temp["path"] == "/sea/temp" and temp["shape"] == [4, 6] and temp["dimensions"] == ["lat", "lon"]
        else:
            assert whole["zarr_format"] == 2 and [a["shape"] for a in whole["arrays"]] == [[4, 4]]


def _metadata_values(doc: dict) -> list[dict]:
    """Every dict in a group document's metadata (its layout per file is the extractors' business)."""
    found: list[dict] = []
    stack = [doc.get("metadata")]
    while stack:
        v = stack.pop()
        if isinstance(v, dict):
            found.append(v)
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
    return found
