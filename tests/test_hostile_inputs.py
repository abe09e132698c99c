"""Hostile files through whatever extractors are registered, on the real worker pool.

XML billion laughs and external entities, zip and gzip bombs, deeply nested JSON,
a pickle that would run code if loaded, a decompression-bomb PNG header, a CSV whose
single line is 1 GB. Each must end as a record (ok, unknown or a clear error) within
the worker's time and memory limits: no worker death, no leak of a local file, no
code run, nothing lost (check_contract).
"""

from __future__ import annotations

import gzip
import json
import os
import pickle
import struct
import time
import zipfile
import zlib

import pytest

from tests.helpers import check_contract
from tests.reliability_plugin import run_pipeline

GB = 1024**3
MB = 1024**2


def billion_laughs() -> bytes:
    ents = ['<!ENTITY lol0 "lol">'] + [f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10)]
    return f'<?xml version="1.0"?>\n<!DOCTYPE lolz [{"".join(ents)}]>\n<lolz>&lol9;</lolz>\n'.encode()


def zeros_deflate(fh, total: int) -> None:
    chunk = bytes(4 * MB)
    for _ in range(total // len(chunk)):
        fh.write(chunk)


class RunsCode:
    """Unpickling this would create ``marker``: the pickle must never be loaded."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def png_bomb() -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 0, 0, 0, 0)  # 10^10 8-bit pixels
    idat = zlib.compress(b"\x00" * (100_001 * 64), 9)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


@pytest.mark.slow
def test_hostile_files_end_as_records_within_limits(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    secret = tmp_path / "host-secret.txt"
    secret.write_text("HOST-SECRET-4d1f0c")
    marker = tmp_path / "pickle-ran"
    (data / "laughs.xml").write_bytes(billion_laughs())
    (data / "xxe.xml").write_text(f'<?xml version="1.0"?>\n<!DOCTYPE r [<!ENTITY x SYSTEM "file://{secret}">]>\n'
                                  "<r>&x;</r>\n")
    (data / "xxe_dtd.xml").write_text('<?xml version="1.0"?>\n<!DOCTYPE r SYSTEM "http://127.0.0.1:9/evil.dtd">\n'
                                      "<r>&x;</r>\n")
    with zipfile.ZipFile(data / "bomb.zip", "w", zipfile.ZIP_DEFLATED) as zf, \
            zf.open("zeros.bin", "w", force_zip64=True) as member:
        zeros_deflate(member, GB)
    with gzip.open(data / "bomb.gz", "wb", compresslevel=1) as fh:
        zeros_deflate(fh, GB)
    with gzip.open(data / "bomb.json.gz", "wb", compresslevel=1) as fh:
        fh.write(b"[")
        zeros_deflate(fh, 256 * MB)
    (data / "deep.json").write_text("[" * 200_000 + "]" * 200_000)
    (data / "deep_obj.json").write_text('{"a":' * 100_000 + "1" + "}" * 100_000)
    (data / "evil.pkl").write_bytes(pickle.dumps(RunsCode(str(marker))))
    (data / "evil.pickle").write_bytes(pickle.dumps(RunsCode(str(marker)), protocol=2))
    (data / "bomb.png").write_bytes(png_bomb())
    with open(data / "one_line.csv", "wb") as fh:
        fh.write(b"a,b\n")
        line = b"1," * (8 * MB)
        for _ in range(GB // len(line)):
            fh.write(line)
    n_files = len(os.listdir(data))
    out = tmp_path / "out"
    started = time.monotonic()
    run, _ = run_pipeline(data, out, workers=1, batch=3, limit_s=30.0, memory_mb=1536, grace_s=10.0)
    elapsed = time.monotonic() - started
    idx = check_contract(out, expected_files=n_files)
    got = idx.set_index(idx["path"].map(os.path.basename))
    assert set(got["status"]) <= {"ok", "error", "unknown"}
    died = got[got["error"].fillna("").str.startswith(("WorkerDied", "TimeoutError: no result"))]
    assert died.empty, died[["status", "error"]].to_dict("index")  # every limit held inside the worker
    assert run.counters.pool_restarts == 0
    assert not marker.exists()  # the pickles were never loaded
    assert "decompression bomb" in got.loc["bomb.json.gz", "error"]  # refused, not inflated
    everything = b"".join(p.read_bytes() for p in (out / "groups").iterdir())
    assert b"HOST-SECRET-4d1f0c" not in everything  # no external entity was resolved
    assert max(p.stat().st_size for p in (out / "groups").iterdir()) < MB  # no expansion reached the metadata
    assert elapsed < 400
    print(json.dumps({k: [v["status"], str(v["error"])[:80]] for k, v in got.to_dict("index").items()},
                     indent=1), f"{elapsed:.1f}s")
