"""tasks/store/fastjson.py: orjson's speed without losing what the standard library reads and writes."""

from __future__ import annotations

import json
import math

import pytest

from tasks.store import fastjson


def test_reads_what_orjson_refuses_as_the_standard_library_does():
    assert math.isnan(fastjson.loads('{"mean": NaN}')["mean"])  # json.dump writes NaN by default
    assert fastjson.loads(b'{"n": 123456789012345678901234567890}')["n"] == 123456789012345678901234567890
    assert fastjson.loads('"\\udc80"') == "\udc80"  # a lone surrogate (an undecodable file name)
    assert fastjson.loads(b'{"a": [1, 2.5, "\xc3\xa9", null, true]}') == {"a": [1, 2.5, "é", None, True]}


def test_broken_json_is_a_value_error():
    with pytest.raises(ValueError):
        fastjson.loads(b'{"a": ')


def test_load_file(tmp_path):
    path = tmp_path / "g.json"
    path.write_text(json.dumps({"metadata": {"k": "é"}}, ensure_ascii=False), encoding="utf-8")
    assert fastjson.load_file(str(path)) == {"metadata": {"k": "é"}}
    with pytest.raises(FileNotFoundError):
        fastjson.load_file(str(tmp_path / "missing.json"))


def test_dumps_is_compact_json_text_and_falls_back():
    assert json.loads(fastjson.dumps([("/a é", 1, 2.5, None)])) == [["/a é", 1, 2.5, None]]
    assert fastjson.dumps(["é"]) == '["é"]'  # not escaped: SQLite reads it as text
    assert json.loads(fastjson.dumps([2**70])) == [2**70]
    assert fastjson.dumps(["\udc80"]) == json.dumps(["\udc80"], ensure_ascii=False)
