"""`xtract validate`: accepts a good metadata directory, rejects each kind of damage with a line naming it."""

from __future__ import annotations

import json
import pathlib
import shutil
import subprocess

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tasks.store.validate import validate_metadata_dir
from tests.helpers import VALIDATE

ROWS = [
    {"path": "/d/a.csv", "size": 10, "mtime": 1.0, "extension": "csv", "mime": "text/csv", "extractor": "tabular",
     "group_id": "g1", "status": "ok", "error": None},
    {"path": "/d/b.txt", "size": 5, "mtime": 2.0, "extension": "txt", "mime": "text/plain", "extractor": "keyword",
     "group_id": "g2", "status": "error", "error": "boom"},
]


def write_out(out: pathlib.Path, rows: list[dict], groups: dict[str, dict | str]) -> pathlib.Path:
    (out / "groups").mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), out / "index.parquet")
    for gid, doc in groups.items():
        (out / "groups" / f"{gid}.json").write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return out


def doc(gid: str, *paths: str) -> dict:
    return {"group_id": gid, "extractor": "x", "extractor_version": "1", "metadata": {}, "errors": [],
            "extracted_at": "2026-01-01T00:00:00+00:00",
            "files": [{"path": p, "size": 1, "mtime": 1.0, "extension": "", "mime": None} for p in paths]}


GOOD = {"g1": doc("g1", "/d/a.csv"), "g2": doc("g2", "/d/b.txt")}


def test_a_good_directory_passes_with_exit_0(tmp_path):
    out = write_out(tmp_path / "out", ROWS, GOOD)
    assert validate_metadata_dir(str(out), expected_files=2) == []
    res = subprocess.run([*VALIDATE, str(out), "--files", "2"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "matches the output contract" in res.stdout


@pytest.mark.parametrize("damage, expected", [
    ("missing_columns", "lacks columns ['status', 'error']"),
    ("duplicate_path", "more than once: '/d/a.csv'"),
    ("bad_status", "statuses outside"),
    ("group_without_rows", "files of group files have no index row: '/d/c.bin'"),
    ("rows_without_group", "indexed files are in no group file: '/d/b.txt'"),
    ("invalid_json", "groups/g2.json is not valid JSON"),
    ("missing_keys", "groups/g2.json lacks ['extracted_at']"),
    ("wrong_group", "index rows name another group"),
    ("file_in_two_groups", "is in two group files"),
    ("wrong_count", "has 2 rows, expected 3"),
    ("no_index", "index.parquet is missing"),
])
def test_each_kind_of_damage_is_named_and_exits_1(tmp_path, damage, expected):
    rows, groups, files = [dict(r) for r in ROWS], dict(GOOD), 2
    if damage == "missing_columns":
        rows = [{k: v for k, v in r.items() if k not in ("status", "error")} for r in rows]
    elif damage == "duplicate_path":
        rows.append(dict(rows[0]))
    elif damage == "bad_status":
        rows[1]["status"] = "done"
    elif damage == "group_without_rows":
        groups["g3"] = doc("g3", "/d/c.bin")
    elif damage == "rows_without_group":
        del groups["g2"]
    elif damage == "invalid_json":
        groups["g2"] = '{"group_id": "g2", '
    elif damage == "missing_keys":
        groups["g2"] = {k: v for k, v in doc("g2", "/d/b.txt").items() if k != "extracted_at"}
    elif damage == "wrong_group":
        rows[1]["group_id"] = "g1"
    elif damage == "file_in_two_groups":
        groups["g1"] = doc("g1", "/d/a.csv", "/d/b.txt")
    elif damage == "wrong_count":
        files = 3
    out = write_out(tmp_path / "out", rows, groups)
    if damage == "no_index":
        (out / "index.parquet").unlink()
    problems = validate_metadata_dir(str(out), expected_files=files)
    assert any(expected in p for p in problems), problems
    res = subprocess.run([*VALIDATE, str(out), "--files", str(files)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 1
    assert expected in res.stderr and res.stderr.startswith("xtract validate: ")


def test_a_run_of_the_cli_validates(tmp_path, subprocess_env):
    """What `xtract run` writes passes `xtract validate` (the project checks its own output)."""
    data = tmp_path / "data"
    shutil.copytree(pathlib.Path(__file__).resolve().parents[1] / "examples", data)
    out = tmp_path / "out"
    run = subprocess.run([*VALIDATE[:-1], "run", str(data), "-o", str(out), "--workers", "1", "--quiet"],
                         capture_output=True, text=True, env=subprocess_env, timeout=600)
    assert run.returncode == 0, run.stderr
    files = sum(1 for p in data.rglob("*") if p.is_file())
    res = subprocess.run([*VALIDATE, str(out), "--files", str(files)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
