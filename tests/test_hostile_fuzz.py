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


SEEDS = {
    "csv": lambda: b"a,b,c\n1,2,x\n3,4,y\n", "tsv": lambda: b"a\tb\n1\t2\n",
    "json": lambda: b'{"a": [1, 2.5, null], "b": {"c": "d"}}', "xml": lambda: b"<r><a x='1'>t</a></r>",
    "zip": _zip, "tar": _tar, "gz": lambda: gzip.compress(b"hello world\n"), "png": _png, "npy": _npy,
    "txt": lambda: b"a few words of text\n", "py": lambda: b"import os\ndef f(x):\n    return x\n",
    "c": lambda: b"#include <stdio.h>\nint main(void){return 0;}\n", "html": lambda: b"<html><p>hi</p></html>",
}


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
    ("json", b'{"\\ud800": "\\udfff"}'),  # lone surrogates from JSON escapes must not break the UTF-8 write
    ("csv", b"\xff\xfe,\x00\n\x80,\x81\n"),
    ("json", b"[" * 5000),
])
def test_fuzz_regressions(ext, payload, tmp_path):
    check_one(tmp_path / f"r.{ext}", ext, payload)
