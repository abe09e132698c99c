"""The tabular extractor: layout sniffing, exact statistics across chunks, workbooks, bad input."""

from __future__ import annotations

import gzip
import math
import pathlib
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest

from extractors import tabular
from extractors.batch import extract_group
from extractors.tabular import extract_tabular, sniff_layout


def cols(result: dict) -> dict[str, dict]:
    return {c["name"]: c for c in result["columns"]}


def one(path: pathlib.Path) -> dict:
    st = path.stat()
    ext = ".".join(path.name.split(".")[1:])
    return extract_group({"group_id": "g", "files": [{"path": str(path), "size": st.st_size, "mtime": st.st_mtime,
                                                       "extension": ext, "mime": None}]})


@pytest.fixture
def big_table(tmp_path) -> tuple[pathlib.Path, pd.DataFrame]:
    """5,003 rows, read in chunks of 700: values far from zero, nulls and text spread over chunks."""
    rng = np.random.default_rng(7)
    n = 5003
    frame = pd.DataFrame({
        "x": 1e9 + rng.normal(0, 1e-3, n),  # sum-of-squares variance cancels catastrophically here
        "k": rng.integers(-50, 50, n),
        "label": np.array(["alpha"] * 2500 + ["beta"] * 1500 + ["gamma"] * 1003)[rng.permutation(n)],
        "sparse": np.where(np.arange(n) % 10 == 0, np.nan, np.arange(n, dtype=float)),
    })
    path = tmp_path / "big.csv"
    frame.to_csv(path, index=False)
    return path, frame


def test_mean_and_std_exact_across_chunks(big_table, monkeypatch):
    path, frame = big_table
    monkeypatch.setattr(tabular, "CHUNK_ROWS", 700)  # 8 chunks, the last one short
    r = extract_tabular(str(path))
    assert r["rows"] == 5003 and r["n_columns"] == 4 and r["header"] is True and r["delimiter"] == ","
    c = cols(r)
    x = pd.read_csv(path)["x"].to_numpy()  # the same parser, read whole, as the reference
    assert c["x"]["mean"] == math.fsum(x) / len(x)
    exact = [Fraction(v) for v in x.tolist()]  # the reference: rational arithmetic, no rounding at all
    mean = sum(exact) / len(exact)
    true_std = math.sqrt(sum((v - mean) ** 2 for v in exact) / (len(exact) - 1))
    assert c["x"]["std"] == pytest.approx(true_std, rel=1e-12)
    assert abs(c["x"]["std"] - true_std) <= abs(np.std(x, ddof=1) - true_std)  # no worse than numpy's two-pass
    assert (c["x"]["min"], c["x"]["max"]) == (x.min(), x.max())
    # the data really is hard: the sum-of-squares formula the extractor used to use is far off
    naive = math.sqrt(max((np.sum(x * x) / len(x) - np.mean(x) ** 2), 0) * len(x) / (len(x) - 1))
    assert abs(naive - np.std(x, ddof=1)) > 0.5 * np.std(x, ddof=1)
    # and the original Xtract's "sum of chunk means / rows" is not what we report
    chunk_means = sum(frame["k"][i : i + 700].mean() for i in range(0, 5003, 700))
    assert c["k"]["mean"] == pytest.approx(frame["k"].mean(), abs=1e-12)
    assert c["k"]["mean"] != pytest.approx(chunk_means / 5003)
    assert (c["k"]["dtype"], c["k"]["min"], c["k"]["max"]) == ("int64", int(frame["k"].min()), int(frame["k"].max()))
    assert c["sparse"]["nulls"] == 501 and c["sparse"]["count"] == 4502
    assert c["sparse"]["mean"] == pytest.approx(frame["sparse"].mean(), rel=1e-15)
    assert c["label"]["top_values"] == [{"value": "alpha", "count": 2500}, {"value": "beta", "count": 1500},
                                        {"value": "gamma", "count": 1003}]
    assert c["label"]["distinct"] == 3


def test_column_typed_differently_in_later_chunk(tmp_path, monkeypatch):
    monkeypatch.setattr(tabular, "CHUNK_ROWS", 10)
    path = tmp_path / "mixed.csv"
    path.write_text("id,code\n" + "".join(f"{i},{i}\n" for i in range(15)) + "15,N/A-x\n16,zz\n")
    c = cols(extract_tabular(str(path)))
    assert c["code"]["dtype"] == "object" and "mean" not in c["code"]
    assert c["code"]["count"] == 17 and c["code"]["distinct"] == 17
    assert c["id"]["mean"] == 8.0


@pytest.mark.parametrize("text,delim,preamble,header,rows", [
    ("a,b,c\n1,2,3\n4,5,6\n", ",", 0, True, 2),
    ("a\tb\n1\t2\n3\t4\n", "\t", 0, True, 2),
    ("a;b\n1,5;2,5\n3,5;4,5\n", ";", 0, True, 2),  # decimal commas: ';' wins
    ("a|b\nx|1\ny|2\n", "|", 0, True, 2),
    ("# exported by logger v2\n# units: K\n\nt,v\n0,1.5\n1,2.5\n", ",", 3, True, 2),
    ("Station report, Jan\nname,t,v\nA,0,1.5\nB,1,2.5\nC,2,3.5\n", ",", 1, True, 3),
    ("1,2,3\n4,5,6\n7,8,9\n", ",", 0, False, 3),
    ("flux\n1.5\n2.5\n3.5\n", ",", 0, True, 3),  # a single numeric column
    ("  t     v\n  0.0   1.5\n  1.0   2.5\n", " ", 0, True, 2),
    ('name,note\n"Smith, J","said ""hi"""\n"Doe, A",plain\n', ",", 0, True, 2),
])
def test_layout_sniffing(tmp_path, text, delim, preamble, header, rows):
    assert sniff_layout(text) == (delim, preamble, header)
    path = tmp_path / "t.csv"
    path.write_text(text)
    r = extract_tabular(str(path))
    assert (r["delimiter"], r["preamble_lines"], r["header"], r["rows"]) == (delim, preamble, header, rows)


def test_quoted_delimiters_and_decimal_commas_read_right(tmp_path):
    path = tmp_path / "q.csv"
    path.write_text('name,note\n"Smith, J","said ""hi"""\n"Doe, A",plain\n')
    c = cols(extract_tabular(str(path)))
    assert {v["value"] for v in c["name"]["top_values"]} == {"Smith, J", "Doe, A"}


def test_encodings_and_gzip(tmp_path):
    latin = tmp_path / "latin.csv"
    latin.write_bytes("ville,t\nMontréal,1\nQuébec,2\n".encode("latin-1"))
    r = extract_tabular(str(latin))
    assert r["encoding"] == "latin-1"
    assert {v["value"] for v in cols(r)["ville"]["top_values"]} == {"Montréal", "Québec"}
    bom = tmp_path / "bom.csv"
    bom.write_bytes(b"\xef\xbb\xbfa,b\n1,2\n3,4\n")
    assert list(cols(extract_tabular(str(bom)))) == ["a", "b"]
    gz = tmp_path / "t.csv.gz"
    gz.write_bytes(gzip.compress(b"a,b\n1,2\n3,4\n5,6\n"))
    res = one(gz)
    assert res["files"][0]["extractor"] == "tabular" and res["files"][0]["status"] == "ok"
    t = res["doc"]["metadata"]["tabular"]
    assert t["compression"] == "gzip" and t["rows"] == 3 and cols(t)["b"]["mean"] == 4.0


def test_xlsx_via_openpyxl(tmp_path):
    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "runs"
    ws.append(["Run log, beamline 7"])
    ws.append(["sample", "temp", "ok"])
    for i in range(10):
        ws.append([f"s{i % 3}", 20.0 + i, i % 2 == 0])
    wb.create_sheet("empty")
    wb.save(tmp_path / "book.xlsx")
    res = one(tmp_path / "book.xlsx")
    assert res["files"][0]["extractor"] == "tabular" and res["files"][0]["status"] == "ok"
    r = res["doc"]["metadata"]["tabular"]
    assert r["format"] == "xlsx" and r["n_sheets"] == 2
    assert (r["preamble_lines"], r["header"], r["rows"]) == (1, True, 10)
    c = cols(r)
    assert c["temp"]["mean"] == 24.5 and c["temp"]["min"] == 20.0 and c["temp"]["max"] == 29.0
    assert c["sample"]["top_values"][0] == {"value": "s0", "count": 4}


@pytest.mark.parametrize("name,content,error", [
    ("empty.csv", b"", "ExtractorError"),
    ("blank.csv", b"\n\n  \n", "ExtractorError"),
    ("garbage.csv", bytes((i * 97 + 13) % 256 for i in range(3000)), "NotMyFormat"),  # and no other format
    ("unclosed.csv", b'a,b\n1,2\n"never closed,3\n4,5\n', "ParserError"),
    ("ragged.csv", b"a,b\n1,2\n3,4\n5,6\n7,8,9,10\n", "ParserError"),
])
def test_malformed_tables_are_error_records(tmp_path, name, content, error):
    path = tmp_path / name
    path.write_bytes(content)
    res = one(path)
    assert res["files"][0]["status"] == "error"
    assert res["doc"]["errors"][0]["type"] == error


def test_a_word_list_named_csv_is_described_as_text(tmp_path):
    """No delimiter splits the lines alike: not a table, not damage either; the chain reaches free text."""
    path = tmp_path / "single_column.csv"
    path.write_bytes(b"justoneword\nanother\n")
    res = one(path)
    assert (res["files"][0]["extractor"], res["files"][0]["status"]) == ("keyword", "ok")
    assert [c["outcome"] for c in res["doc"]["chain"][str(path)]] == ["not_my_format", "ok"]
