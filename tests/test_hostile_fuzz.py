"""Fuzzing every registered extractor (hypothesis, fixed budget) through extract_group.

A "crash" is anything that escapes extract_group (it must turn every failure into
an error record), a document that is not strict JSON, a file without exactly one
outcome, or a run past the time limit. Inputs are random bytes and mutations of a
small valid sample of each format. Crashes found are kept below as regressions.
"""

from __future__ import annotations

import gzip
import io
import json
import tarfile
import time
import zipfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from extractors.batch import extract_group, write_json_atomic
from extractors.registry import default_registry

EXAMPLES = 30  # per extractor: a few seconds each in the normal suite


def _zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a.csv", "x,y\n1,2\n")
    return buf.getvalue()


def _tar() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        info = tarfile.TarInfo("a.txt")
        info.size = 5
        tf.addfile(info, io.BytesIO(b"hello"))
    return buf.getvalue()


def _png() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (4, 3), (10, 20, 30)).save(buf, "PNG")
    return buf.getvalue()


def _npy() -> bytes:
    import numpy as np

    buf = io.BytesIO()
    np.save(buf, np.arange(6).reshape(2, 3))
    return buf.getvalue()


def _mat() -> bytes:
    from scipy.io import savemat

    buf = io.BytesIO()
    savemat(buf, {"x": [[1.0, 2.0]], "s": {"f": 1}}, do_compression=True)
    return buf.getvalue()


def _package_file(module: str, *parts: str) -> bytes:
    import importlib
    import pathlib

    return pathlib.Path(importlib.import_module(module).__file__).parent.joinpath(*parts).read_bytes()


def _wav() -> bytes:
    import numpy as np
    from scipy.io import wavfile

    buf = io.BytesIO()
    wavfile.write(buf, 8000, np.zeros(64, dtype="<i2"))
    return buf.getvalue()


def _parquet() -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(pa.table({"a": [1, 2, 3]}), buf)
    return buf.getvalue()


def _sqlite() -> bytes:
    import os
    import sqlite3
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        con = sqlite3.connect(os.path.join(d, "s.db"))
        con.execute("CREATE TABLE t (a INTEGER)")
        con.commit()
        con.close()
        with open(os.path.join(d, "s.db"), "rb") as fh:
            return fh.read()


def _grib() -> bytes:
    import struct

    s1 = struct.pack(">IBHHBBBHBBBBBBB", 21, 1, 98, 0, 4, 0, 1, 2024, 1, 2, 0, 0, 0, 0, 1)
    s3 = bytearray(72)
    struct.pack_into(">IBBIBBH", s3, 0, 72, 3, 0, 6, 0, 0, 0)
    struct.pack_into(">II", s3, 30, 3, 2)
    s4 = bytearray(34)
    struct.pack_into(">IBHH", s4, 0, 34, 4, 0, 0)
    body = s1 + bytes(s3) + bytes(s4) + b"7777"
    return b"GRIB\x00\x00\x00\x02" + struct.pack(">Q", 16 + len(body)) + body


def _docx() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("[Content_Types].xml", "<Types/>")
        zf.writestr("word/document.xml", "<d/>")
        zf.writestr("docProps/core.xml", "<c xmlns:dc='urn:dc'><dc:title>t</dc:title></c>")
    return buf.getvalue()


SEEDS = {
    "csv": lambda: b"a,b,c\n1,2,x\n3,4,y\n", "tsv": lambda: b"a\tb\n1\t2\n",
    "json": lambda: b'{"a": [1, 2.5, null], "b": {"c": "d"}}', "xml": lambda: b"<r><a x='1'>t</a></r>",
    "zip": _zip, "tar": _tar, "gz": lambda: gzip.compress(b"hello world\n"), "png": _png, "npy": _npy,
    "txt": lambda: b"a few words of text\n", "py": lambda: b"import os\ndef f(x):\n    return x\n",
    "c": lambda: b"#include <stdio.h>\nint main(void){return 0;}\n", "html": lambda: b"<html><p>hi</p></html>",
    # the long-tail formats: real files from the libraries or from package test data
    "mat": _mat, "sav": lambda: _package_file("scipy", "io", "tests", "data", "struct_arrays.sav"), "wav": _wav,
    "dcm": lambda: _package_file("pydicom", "data", "test_files", "CT_small.dcm"),
    "ttf": lambda: _ttf(),
    "ini": lambda: b"[section]\nkey = value\n[other]\nx = 1\n", "pkl": lambda: __import__("pickle").dumps({"a": 1}),
    "parquet": _parquet, "grib": _grib, "zarray": lambda: b'{"zarr_format": 2, "shape": [4], "chunks": [2]}',
    "nii": lambda: _package_file("nibabel", "tests", "data", "anatomical.nii")[:352],
    "mseed": lambda: _mseed(),
    "docx": _docx, "db": _sqlite,
}


def _ttf() -> bytes:
    from fontTools.fontBuilder import FontBuilder
    from fontTools.pens.ttGlyphPen import TTGlyphPen

    fb = FontBuilder(1000, isTTF=True)
    fb.setupGlyphOrder([".notdef"])
    fb.setupCharacterMap({})
    fb.setupGlyf({".notdef": TTGlyphPen(None).glyph()})
    fb.setupHorizontalMetrics({".notdef": (500, 0)})
    fb.setupHorizontalHeader(ascent=800, descent=-200)
    fb.setupNameTable({"familyName": "Fuzz", "styleName": "Regular"})
    fb.setupOS2()
    fb.setupPost()
    buf = io.BytesIO()
    fb.save(buf)
    return buf.getvalue()


def _mseed() -> bytes:
    import struct

    head = bytearray(64)
    head[0:8] = b"000001D "
    head[8:20] = b"ANMO 00BHZIU"
    struct.pack_into(">HHBBBBHHhh", head, 20, 2024, 32, 0, 0, 0, 0, 0, 10, 20, 1)
    head[39] = 1
    struct.pack_into(">HHHHBBBB", head, 44, 64, 48, 1000, 0, 3, 1, 8, 0)
    return bytes(head) + bytes(192)


def _seed(ext: str) -> bytes:
    try:
        return SEEDS[ext]() if ext in SEEDS else b""
    except ImportError:
        return b""


@st.composite
def mutated(draw, seed: bytes) -> bytes:
    data = bytearray(seed)
    for _ in range(draw(st.integers(0, 6))):
        if not data:
            break
        pos = draw(st.integers(0, len(data) - 1))
        op = draw(st.sampled_from(("flip", "cut", "dup", "insert")))
        if op == "flip":
            data[pos] ^= draw(st.integers(1, 255))
        elif op == "cut":
            del data[pos:]
        elif op == "dup":
            data[pos:pos] = data[pos : pos + draw(st.integers(1, 64))]
        else:
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
    return bytes(data)


def check_one(path, ext: str, payload: bytes) -> None:
    path.write_bytes(payload)
    st_ = path.stat()
    group = {"group_id": "fuzz", "fingerprint": "f", "endpoint": "local",
             "files": [{"path": str(path), "size": st_.st_size, "mtime": st_.st_mtime, "extension": ext,
                        "mime": None, "extractor": None}]}
    started = time.monotonic()
    res = extract_group(group, limit_s=5.0)
    assert time.monotonic() - started < 10
    out = path.with_name("doc.json")
    write_json_atomic(str(out), res["doc"])  # strict, valid UTF-8 JSON on disk, whatever the extractor returned
    assert json.loads(out.read_text(encoding="utf-8"))["group_id"] == "fuzz"
    assert len(res["files"]) == 1 and res["files"][0]["status"] in {"ok", "error", "unknown"}


def extractor_cases() -> list[tuple[str, str]]:
    reg = default_registry()
    cases = []
    for name, ex in sorted(reg.by_name.items()):
        ext = sorted(ex.extensions, key=lambda e: (e not in SEEDS, len(e), e))[0] if ex.extensions else "bin"
        cases.append((name, ext))
    return cases


@pytest.mark.parametrize(("name", "ext"), extractor_cases())
def test_fuzz_extractor(name, ext, tmp_path_factory):
    path = tmp_path_factory.mktemp(f"fuzz-{name}") / f"sample.{ext}"
    seed = _seed(ext)

    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(payload=st.one_of(st.binary(max_size=4096), mutated(seed)) if seed else st.binary(max_size=4096))
    def fuzz(payload: bytes) -> None:
        check_one(path, ext, payload)

    fuzz()


# -- regressions: crashes the fuzzer found, kept ------------------------------------------------
@pytest.mark.parametrize(("ext", "payload"), [
    ("grib", b"GRIB\x00\x00\x00\x02" + b"\xff" * 8 + b"\x00" * 64),  # a message claiming 2**64 bytes
    ("grib", (b"GRIB\x00\x00\x10\x01" + b"\x00" * 8) * 500),  # GRIB1 messages shorter than their sections
    ("fits", b"SIMPLE  =                    T" + b" " * 50 + b"COMMENT " * 10 * 36 * 3000),  # 3000 blocks, no END
    ("sav", b"SR\x00\x06" + b"\x00\x00\x00\x02" + b"\xff\xff\xff\xff" * 3 + b"x" * 64),  # points past the end
    ("mat", b"MATLAB 5.0 MAT-file".ljust(124) + b"\x00\x01IM" + b"\x0f\x00\x00\x00\xff\xff\xff\x7f" + b"\x78\x9c"),
    ("pkl", b"\x80\x04\x95" + b"\xff" * 8 + b"\x8c\x03abc" * 100),  # a frame longer than the file
    ("ttf", b"\x00\x01\x00\x00\xff\xff" + b"\x00" * 6 + b"name" + b"\x00" * 4 + b"\x00\x00\x00\x10" + b"\xff" * 4),
    ("mseed", b"000001D " + b"ANMO 00BHZIU" + b"\x07\xe8\x00\x20" + b"\x00" * 8 + b"\x00\x00\xff\xff" + b"\x00" * 20),
    ("nii", b"\x5c\x01\x00\x00" + b"\x00" * 36 + b"\x08\x00" + b"\xff\x7f" * 7 + b"\x00" * 300),
    ("dcm", b"\x00" * 128 + b"DICM" + b"\x02\x00\x10\x00UI\xff\xff" + b"1.2" * 10),
    ("zarray", b"[" * 100_000),
    ("json", b'{"\\ud800": "\\udfff"}'),  # lone surrogates from JSON escapes must not break the UTF-8 write
    ("csv", b"\xff\xfe,\x00\n\x80,\x81\n"),
    ("json", b"[" * 5000),
])
def test_fuzz_regressions(ext, payload, tmp_path):
    check_one(tmp_path / f"r.{ext}", ext, payload)
