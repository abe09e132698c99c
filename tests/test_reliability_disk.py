"""The metadata disk fills up (ENOSPC): a clear failure, and what was written stays valid.

The metadata directory is a 512 KB tmpfs mounted for the test (root can mount
here); where mounting is refused the test uses RLIMIT_FSIZE instead (EFBIG: the
same code path), and says which one it used in the assertion message.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess

import pandas as pd
import pytest

from extractors.batch import MetadataWriteError
from tests.helpers import check_contract
from tests.reliability_plugin import run_pipeline


def mount_tmpfs(path, size: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)],
                         capture_output=True)
    return res.returncode == 0


def many_files(root, n: int, start: int = 0) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(start, start + n):
        (root / f"f{i:04d}.bin").write_bytes(bytes([i % 256]) * 64)


def test_disk_full_fails_clearly_and_keeps_what_was_written(tmp_path):
    data, out = tmp_path / "data", tmp_path / "meta"
    mounted = mount_tmpfs(out, "512k")
    try:
        many_files(data, 10)
        run_pipeline(data, out, workers=1, batch=5)
        before = check_contract(out, expected_files=10)
        many_files(data, 400, start=10)
        if mounted:
            with pytest.raises(MetadataWriteError) as raised:
                run_pipeline(data, out, workers=1, batch=20)
            assert "No space left on device" in str(raised.value), "tmpfs"
        else:
            import resource

            old = resource.getrlimit(resource.RLIMIT_FSIZE)
            resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, old[1]))
            try:
                with pytest.raises(OSError):
                    run_pipeline(data, out, workers=1, batch=20)
            finally:
                resource.setrlimit(resource.RLIMIT_FSIZE, old)
        # what was written stays valid: the old index, every group file, the journal
        assert pd.read_parquet(out / "index.parquet").equals(before)
        names = os.listdir(out / "groups")
        assert not [n for n in names if n.startswith(".tmp-")]
        for n in names:
            json.loads((out / "groups" / n).read_text())
        assert len(names) > 10  # it got some way before the disk filled
        db = sqlite3.connect(out / ".xtract" / "state.sqlite")
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        db.close()
        assert not list(out.glob("*.partial"))
        if mounted:  # space freed: the rerun completes and resumes
            subprocess.run(["mount", "-o", "remount,size=16m", str(out)], check=True)
            run, _ = run_pipeline(data, out, workers=1, batch=20)
            check_contract(out, expected_files=410)
            assert run.counters.groups_skipped >= 10
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(out)], check=False)
