"""A repository nobody curated: unreadable files and directories, symlink loops, names that are
not UTF-8 or are very long, empty files and trees, a sparse file of many GB.

The run is the real CLI in a subprocess. This machine runs tests as root, and root
reads everything; so when ``setpriv`` is available the CLI runs as root *without*
CAP_DAC_OVERRIDE / CAP_DAC_READ_SEARCH, which makes permission bits bind it like any
user. Without setpriv the test asserts what root really gets (the files are read).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from extractors.fspath import to_fs, to_text
from tests.helpers import VALIDATE, check_contract, write_csv

SPARSE_BYTES = 64 * 1024**3
SETPRIV = shutil.which("setpriv") if os.geteuid() == 0 else None


def build_tree(root) -> dict[str, str]:
    """The hostile tree; returns role -> path as the index must show it (text form)."""
    root.mkdir(parents=True)
    broot = os.fsencode(root)
    paths = {"plain": str(write_csv(root / "plain.csv"))}
    unreadable = write_csv(root / "unreadable.csv")
    unreadable.chmod(0)
    paths["unreadable"] = str(unreadable)
    write_csv(root / "locked" / "inside.csv")
    (root / "locked").chmod(0)
    os.symlink("loop_b", root / "loop_a")
    os.symlink("loop_a", root / "loop_b")
    os.symlink("self", root / "self")
    (root / "d").mkdir()
    os.symlink("..", root / "d" / "up")  # a directory loop when links are followed
    latin1 = os.path.join(broot, b"caf\xe9.csv")
    with open(latin1, "wb") as fh:
        fh.write(b"a,b\n1,2\n3,4\n")
    os.mkdir(os.path.join(broot, b"dir\xff\xfe"))
    inner = os.path.join(broot, b"dir\xff\xfe", b"x\x80y.bin")
    with open(inner, "wb") as fh:
        fh.write(bytes(range(256)))
    paths["latin1"] = to_text(os.fsdecode(latin1))
    paths["inner"] = to_text(os.fsdecode(inner))
    long_name = root / ("n" * 251 + ".csv")  # 255 bytes: NAME_MAX
    paths["long_name"] = str(write_csv(long_name))
    deep = root
    for i in range(14):
        deep = deep / (f"{i:02d}" + "d" * 230)
    paths["deep"] = str(write_csv(deep / "deep.csv"))
    assert len(paths["deep"]) > 3000
    (root / "empty.csv").touch()
    (root / "empty.bin").touch()
    paths["empty_csv"], paths["empty_bin"] = str(root / "empty.csv"), str(root / "empty.bin")
    (root / "e" / "f" / "g" / "h").mkdir(parents=True)  # a 0-byte directory tree
    with open(root / "sparse.bin", "wb") as fh:
        fh.truncate(SPARSE_BYTES)
    paths["sparse"] = str(root / "sparse.bin")
    return paths


@pytest.mark.slow
def test_hostile_tree_every_readable_file_once_and_clear_errors(tmp_path, xtract_bin, subprocess_env):
    paths = build_tree(tmp_path / "data")
    if not SETPRIV:  # root lists a mode-000 directory
        paths["locked_inside"] = str(tmp_path / "data" / "locked" / "inside.csv")
    out = tmp_path / "out"
    cmd = [*xtract_bin, "run", str(tmp_path / "data"), "-o", str(out), "--workers", "1", "--follow-symlinks",
           "--json"]
    if SETPRIV:
        cmd = [SETPRIV, "--bounding-set=-dac_override,-dac_read_search", "--", *cmd]
    try:
        res = subprocess.run(cmd, env=subprocess_env, capture_output=True, text=True, timeout=400)
    finally:
        (tmp_path / "data" / "locked").chmod(0o755)  # so pytest can clean up
    assert res.returncode == 0, res.stderr[-3000:]
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    idx = check_contract(out, expected_files=len(paths))
    check = subprocess.run([*VALIDATE, str(out), "--files", str(len(paths))],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    got = idx.set_index("path")
    assert set(got.index) == set(paths.values())  # loops and the locked dir add nothing, lose nothing
    assert got.loc[paths["plain"], "status"] == "ok"
    if SETPRIV:
        assert got.loc[paths["unreadable"], "status"] == "error"
        assert got.loc[paths["unreadable"], "error"].startswith("PermissionError")
    else:  # root with full capabilities reads a mode-000 file: say so rather than pretend
        assert got.loc[paths["unreadable"], "status"] == "ok"
    assert got.loc[paths["latin1"], "status"] == "ok"  # found again from its text form by the worker
    assert paths["latin1"].endswith("caf\\xe9.csv") and os.path.exists(to_fs(paths["latin1"]))
    assert got.loc[paths["inner"], "status"] == "unknown"
    assert got.loc[paths["long_name"], "status"] == "ok" and got.loc[paths["deep"], "status"] == "ok"
    assert got.loc[paths["empty_csv"], "status"] in {"error", "unknown"}
    assert got.loc[paths["empty_bin"], "status"] == "unknown"
    assert got.loc[paths["sparse"], "size"] == SPARSE_BYTES and got.loc[paths["sparse"], "status"] == "unknown"
    assert summary["files_crawled"] == len(paths) and summary["bytes_crawled"] >= SPARSE_BYTES
    if SETPRIV:  # the locked directory is reported, not silently skipped
        assert "locked" in res.stderr and "Permission denied" in res.stderr
