"""Test helpers: build real corpora on disk and check the output contract."""

from __future__ import annotations

import json
import pathlib
import sys
from typing import Any

import pandas as pd

INDEX_COLUMNS = ["path", "size", "mtime", "extension", "mime", "extractor", "group_id", "status", "error"]


def write_csv(path: pathlib.Path, rows: int = 3) -> pathlib.Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["x,y,name"] + [f"{i},{i * 0.5},n{i % 3}" for i in range(rows)]
    path.write_text("\n".join(lines) + "\n")
    return path


def small_corpus(root: pathlib.Path) -> dict[str, pathlib.Path]:
    """A mixed little repository: good tables, free text, binary, a corrupt table."""
    files = {
        "t1": write_csv(root / "a" / "t1.csv"),
        "t2": write_csv(root / "a" / "t2.csv", rows=10),
        "t3": write_csv(root / "a" / "b" / "t3.csv", rows=5),
    }
    files["txt"] = root / "a" / "notes.txt"
    files["txt"].write_text("free text about an experiment\nwith two lines\n")
    files["bin"] = root / "blob.bin"
    files["bin"].write_bytes(bytes(range(256)) * 8)
    files["bad"] = root / "a" / "b" / "broken.csv"
    files["bad"].write_bytes(b'a,b\n1,2\n"never closed,\x00\x01\n')
    return files


#: `xtract validate` as a subprocess with this interpreter: the project's own check of the output contract.
VALIDATE = [sys.executable, "-m", "flows.cli", "validate"]


def check_contract(out: pathlib.Path, expected_files: int | None = None) -> pd.DataFrame:
    """Assert index.parquet and groups/*.json agree with the output contract; return the index."""
    idx = pd.read_parquet(out / "index.parquet")
    assert list(idx.columns) == INDEX_COLUMNS
    assert idx["path"].is_unique
    assert set(idx["status"]) <= {"ok", "error", "unknown", "skipped"}
    if expected_files is not None:
        assert len(idx) == expected_files
    in_groups: dict[str, str] = {}
    for g in (out / "groups").glob("*.json"):
        doc: dict[str, Any] = json.loads(g.read_text())
        for key in ("group_id", "extractor", "extractor_version", "files", "metadata", "errors", "extracted_at"):
            assert key in doc, f"{g.name} lacks {key}"
        assert doc["group_id"] == g.stem
        for f in doc["files"]:
            assert f["path"] not in in_groups
            in_groups[f["path"]] = g.stem
    assert set(in_groups) == set(idx["path"])
    assert all(in_groups[p] == gid for p, gid in zip(idx["path"], idx["group_id"], strict=True))
    assert not list((out / "groups").glob(".tmp-*")), "a half-written group file was left behind"
    from tasks.store.validate import validate_metadata_dir

    assert validate_metadata_dir(str(out), expected_files=expected_files) == []
    return idx


def load_group(out: pathlib.Path, idx: pd.DataFrame, path: pathlib.Path) -> dict[str, Any]:
    gid = idx.loc[idx["path"] == str(path), "group_id"].item()
    return json.loads((out / "groups" / f"{gid}.json").read_text())
