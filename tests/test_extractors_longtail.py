"""The long tail of scientific formats, on real files: written by the real libraries (scipy, h5py,
pandas/pyarrow, zarr, fontTools, pydicom, pypdf, Pillow, sqlite3) or shipped as test data inside
installed packages (scipy's MATLAB/IDL/WAV files, pydicom's DICOM, nibabel's NIfTI/TrackVis/MRtrix),
plus the fallback chain that routes a file to the extractor that reads it.
"""

from __future__ import annotations

import io
import json
import os
import pathlib
import pickle
import sqlite3
import struct
import sys
import zipfile

import numpy as np
import pytest

from extractors.batch import extract_group
from extractors.detect import split_extension
from extractors.zarr_store import zarr_group_key, zarr_store_root

SCIPY_IO = pathlib.Path(__import__("scipy").__file__).parent / "io"
NIBABEL_DATA = pathlib.Path(__import__("nibabel").__file__).parent / "tests" / "data"


def one(path: pathlib.Path | str) -> tuple[dict, dict]:
    path = str(path)
    st = os.stat(path)
    res = extract_group({"group_id": "g", "files": [{"path": path, "size": st.st_size, "mtime": st.st_mtime,
                                                     "extension": split_extension(path)}]})
    json.dumps(res["doc"], allow_nan=False)
    return res["files"][0], res["doc"]


def meta(path: pathlib.Path | str, extractor: str) -> dict:
    f, doc = one(path)
    assert (f["extractor"], f["status"]) == (extractor, "ok"), (f, doc["errors"])
    assert doc["provenance"] == {extractor: doc["extractor_version"]}
    return doc["metadata"][extractor]


# ---------------------------------------------------------------- MATLAB

def test_matlab_v4_v5_v73_written_by_scipy_and_h5py(tmp_path):
    import h5py
    from scipy.io import savemat

    data = {"temperature": np.zeros((3, 4)), "label": "run 7", "cfg": {"gain": 2.0, "mode": "fast"},
            "cells": np.array([1, "a"], dtype=object)}
    savemat(tmp_path / "v5.mat", data, do_compression=True)
    m = meta(tmp_path / "v5.mat", "matlab")
    assert m["version"] == "5" and m["platform"] and m["compressed_variables"] == 4
    got = {v["name"]: v for v in m["variables"]}
    assert (got["temperature"]["class"], got["temperature"]["shape"]) == ("double", [3, 4])
    assert got["label"]["class"] == "char"
    assert (got["cfg"]["class"], sorted(got["cfg"]["fields"])) == ("struct", ["gain", "mode"])
    assert got["cells"]["class"] == "cell"
    savemat(tmp_path / "v4.mat", {"x": np.ones((2, 5))}, format="4")
    m = meta(tmp_path / "v4.mat", "matlab")
    assert m["version"] == "4" and m["variables"] == [{"name": "x", "class": "double", "shape": [2, 5],
                                                       "bytes": 80}]
    with h5py.File(tmp_path / "v73.mat", "w", userblock_size=512) as f:
        d = f.create_dataset("A", data=np.zeros((5, 2)))  # MATLAB 2x5, stored transposed
        d.attrs["MATLAB_class"] = np.bytes_("double")
    with open(tmp_path / "v73.mat", "r+b") as fh:
        fh.write(b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 HDF5 schema 1.00 .")
    m = meta(tmp_path / "v73.mat", "matlab")
    assert (m["version"], m["variables"][0]["class"], m["variables"][0]["shape"]) == ("7.3", "double", [2, 5])


def test_matlab_files_shipped_with_scipy():
    files = sorted((SCIPY_IO / "matlab" / "tests" / "data").glob("*.mat"))
    assert len(files) > 50
    outcomes = {p.name: one(p)[0]["status"] for p in files}
    ok = [n for n, s in outcomes.items() if s == "ok"]
    assert len(ok) >= len(files) - 3, {n: s for n, s in outcomes.items() if s != "ok"}


def test_matlab_compressed_bomb_is_not_inflated(tmp_path):
    import zlib

    inner = struct.pack("<II", 14, 2**31 - 8) + b"\x00" * (16 * 1024 * 1024)  # claims 2 GB; 16 MB of zeros
    comp = zlib.compress(inner, 1)
    header = b"MATLAB 5.0 MAT-file, Platform: x".ljust(116, b" ") + b"\x00" * 8 + b"\x00\x01IM"
    (tmp_path / "bomb.mat").write_bytes(header + struct.pack("<II", 15, len(comp)) + comp)
    f, doc = one(tmp_path / "bomb.mat")
    assert f["status"] in ("ok", "error")  # unreadable header, but only 64 KB were inflated
    assert doc["seconds"] < 2


# ---------------------------------------------------------------- IDL, audio

def test_idl_save_files_shipped_with_scipy():
    from scipy.io import readsav

    path = SCIPY_IO / "tests" / "data" / "struct_arrays.sav"
    m = meta(path, "idl")
    assert m["idl_version"]["release"] and m["n_variables"] == len(readsav(str(path)))
    var = m["variables"][0]
    assert var["type"] == "structure" and {t["name"] for t in var["tags"]} >= {"A", "B"}
    files = sorted((SCIPY_IO / "tests" / "data").glob("*.sav"))
    statuses = [one(p)[0]["status"] for p in files]
    assert statuses.count("ok") == len(files)
    m = meta(SCIPY_IO / "tests" / "data" / "scalar_float32.sav", "idl")
    assert m["variables"] == [{"name": "F32", "type": "float32", "scalar": True}]


def test_idl_compressed_save_file(tmp_path):
    m = meta(SCIPY_IO / "tests" / "data" / "various_compressed.sav", "idl")
    assert m["compressed"] and m["n_variables"] >= 1


def test_audio_wav_aiff_flac(tmp_path):
    from scipy.io import wavfile

    wavfile.write(tmp_path / "tone.wav", 8000, (np.sin(np.arange(16000) / 5) * 3000).astype("<i2"))
    m = meta(tmp_path / "tone.wav", "audio")
    assert (m["sample_rate"], m["channels"], m["bits_per_sample"], m["duration_s"]) == (8000, 1, 16, 2.0)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import aifc
    with aifc.open(str(tmp_path / "tone.aiff"), "wb") as a:
        a.setnchannels(2)
        a.setsampwidth(2)
        a.setframerate(44100)
        a.writeframes(b"\x00\x01" * 2 * 44100)
    m = meta(tmp_path / "tone.aiff", "audio")
    assert (m["channels"], m["sample_rate"], m["frames"], m["duration_s"]) == (2, 44100.0, 44100, 1.0)
    # FLAC: STREAMINFO (48 kHz, 2 ch, 24 bit, 96000 frames) and a Vorbis comment block
    bits = (48000 << 44) | (1 << 41) | (23 << 36) | 96000
    streaminfo = struct.pack(">HHII", 4096, 4096, 0, 0)[:10] + bits.to_bytes(8, "big") + b"\x00" * 16
    vendor = b"xtract"
    comment = struct.pack("<I", len(vendor)) + vendor + struct.pack("<I", 1) + struct.pack("<I", 11) + b"TITLE=Storm"
    flac = b"fLaC" + bytes([0]) + len(streaminfo).to_bytes(3, "big") + streaminfo
    flac += bytes([0x84]) + len(comment).to_bytes(3, "big") + comment
    (tmp_path / "s.flac").write_bytes(flac)
    m = meta(tmp_path / "s.flac", "audio")
    assert (m["sample_rate"], m["channels"], m["bits_per_sample"], m["duration_s"]) == (48000, 2, 24, 2.0)
    assert m["tags"] == {"title": "Storm"}


def test_audio_shipped_with_scipy():
    files = sorted((SCIPY_IO / "tests" / "data").glob("*.wav"))
    statuses = {p.name: one(p)[0]["status"] for p in files}
    assert sum(s == "ok" for s in statuses.values()) >= len(files) - 2, statuses


# ---------------------------------------------------------------- DICOM, neuroimaging

def test_dicom_from_pydicom_test_data_leaves_patient_out():
    from pydicom.data import get_testdata_file

    m = meta(get_testdata_file("CT_small.dcm"), "dicom")
    assert (m["Modality"], m["Rows"], m["Columns"], m["SOPClassName"]) == ("CT", 128, 128, "CT Image Storage")
    assert m["transfer_syntax"]["name"] == "Explicit VR Little Endian"
    text = json.dumps(m)
    assert "PatientName" not in text and "CompressedSamples^CT1" not in text and "PatientID" not in text
    d = meta(get_testdata_file("DICOMDIR"), "dicom")
    assert d["directory_records"]["PATIENT"] >= 1 and d["n_directory_records"] > 10
    nometa = get_testdata_file("ExplVR_BigEndNoMeta.dcm")  # no preamble, big endian: found by the sniff
    assert meta(nometa, "dicom")["preamble"] is False


def test_dicom_without_extension_is_found_by_content(tmp_path):
    from pydicom.data import get_testdata_file

    (tmp_path / "IM0001").write_bytes(pathlib.Path(get_testdata_file("MR_small.dcm")).read_bytes())
    assert meta(tmp_path / "IM0001", "dicom")["Modality"] == "MR"


def test_missing_library_says_which_extra(tmp_path, monkeypatch):
    from pydicom.data import get_testdata_file

    monkeypatch.setitem(sys.modules, "pydicom", None)
    f, doc = one(get_testdata_file("CT_small.dcm"))
    assert f["status"] == "error" and doc["errors"][0]["type"] == "MissingLibrary"
    assert "install the science extra" in doc["errors"][0]["message"]


def test_neuroimaging_headers_shipped_with_nibabel():
    m = meta(NIBABEL_DATA / "example4d.nii.gz", "neuro")
    assert m["format"] == "nifti1" and m["compressed"] and m["shape"] == [128, 96, 24, 2]
    assert m["datatype"] == "int16" and m["space_unit"] == "mm"
    assert meta(NIBABEL_DATA / "standard.trk", "neuro")["format"] == "trk"
    assert meta(NIBABEL_DATA / "standard.tck", "neuro")["format"] == "tck"
    assert meta(NIBABEL_DATA / "test.mgz", "neuro")["format"] == "mgz"
    # an Analyze .hdr: FITS claims .hdr, says "not my format", and the chain reaches the neuro sniff
    f, doc = one(NIBABEL_DATA / "analyze.hdr")
    assert (f["extractor"], f["status"]) == ("neuro", "ok")
    assert [c["extractor"] for c in doc["chain"][str(NIBABEL_DATA / "analyze.hdr")]] == ["fits", "neuro"]


# ---------------------------------------------------------------- columnar, GRIB, Zarr

def test_columnar_footers_written_by_pandas(tmp_path):
    import pandas as pd

    df = pd.DataFrame({"t": np.arange(1000, dtype="f8"), "site": ["a", "b"] * 500})
    df.to_parquet(tmp_path / "d.parquet", row_group_size=300)
    m = meta(tmp_path / "d.parquet", "columnar")
    assert (m["rows"], m["row_groups"], m["n_columns"]) == (1000, 4, 2) and "pandas" in m["metadata"]
    df.to_feather(tmp_path / "d.feather")
    assert meta(tmp_path / "d.feather", "columnar")["rows"] == 1000
    df.to_orc(tmp_path / "d.orc")
    assert meta(tmp_path / "d.orc", "columnar")["rows"] == 1000
    df.to_stata(tmp_path / "d.dta", write_index=False, variable_labels={"t": "time in s"}, data_label="demo")
    m = meta(tmp_path / "d.dta", "columnar")
    assert (m["rows"], m["data_label"], m["columns"][0]["label"]) == (1000, "demo", "time in s")


def grib2_message(param: tuple[int, int], level_pa: int, hour: int) -> bytes:
    """One GRIB2 message: identification, a 2x3 regular lat/lon grid, a product at an isobaric level."""
    s1 = struct.pack(">IBHHBBBHBBBBBBB", 21, 1, 98, 0, 4, 0, 1, 2024, 1, 2, hour, 0, 0, 0, 1)
    s3 = bytearray(72)
    struct.pack_into(">IBBIBBH", s3, 0, 72, 3, 0, 6, 0, 0, 0)
    struct.pack_into(">II", s3, 30, 3, 2)
    struct.pack_into(">ii", s3, 46, 60_000_000, 0)
    struct.pack_into(">ii", s3, 55, 59_000_000, 2_000_000)
    s4 = bytearray(34)
    struct.pack_into(">IBHH", s4, 0, 34, 4, 0, 0)
    s4[9], s4[10], s4[17] = param[0], param[1], 1
    struct.pack_into(">iBbi", s4, 18, 6, 100, 0, level_pa)
    s5 = struct.pack(">IBIH", 21, 5, 6, 0) + b"\x00" * 10
    s6 = struct.pack(">IBB", 6, 6, 255)
    s7 = struct.pack(">IB", 5, 7)
    body = s1 + bytes(s3) + bytes(s4) + s5 + s6 + s7 + b"7777"
    return b"GRIB\x00\x00\x00\x02" + struct.pack(">Q", 16 + len(body)) + body


def test_grib2_messages(tmp_path):
    data = b"".join(grib2_message(p, lev, h) for p in ((0, 0), (2, 2)) for lev in (50000, 85000) for h in (0, 12))
    (tmp_path / "f.grib2").write_bytes(data)
    m = meta(tmp_path / "f.grib2", "grib")
    assert m["n_messages"] == 8 and m["parameters"] == {"t": 4, "u": 4}
    assert m["levels"] == {"isobaric:50000": 4, "isobaric:85000": 4}
    assert m["reference_times"] == ["2024-01-02T00:00:00", "2024-01-02T12:00:00"]
    assert m["grids"] == ["regular_ll[2, 3]"] and m["forecast_times"] == [6]
    (tmp_path / "cut.grib2").write_bytes(data[:-40])
    assert meta(tmp_path / "cut.grib2", "grib")["truncated"] is True


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_zarr_store_is_described_from_its_metadata(tmp_path, zarr_format):
    import zarr  # the dev extra installs it
    store = tmp_path / "obs.zarr"
    g = zarr.open_group(str(store), mode="w", zarr_format=zarr_format)
    g.attrs["title"] = "buoy 7"
    a = g.create_array("sst", shape=(4, 6), chunks=(2, 3), dtype="f4", attributes={"units": "K"})
    a[:] = 1.0
    files = sorted(str(p) for p in store.rglob("*") if p.is_file())
    assert {zarr_store_root(p) for p in files} == {str(store)}
    assert {zarr_group_key(p) for p in files} == {str(store)}  # the grouper's key: one group per store
    (tmp_path / "notes.txt").write_text("x")
    assert zarr_group_key(str(tmp_path / "notes.txt")) is None
    assert zarr_store_root(str(tmp_path)) is None and zarr_store_root(str(store / "sst")) == str(store)
    group = {"group_id": "z", "files": [{"path": p, "size": os.path.getsize(p), "mtime": os.path.getmtime(p),
                                         "extension": split_extension(p)} for p in files]}
    res = extract_group(group)
    assert {f["extractor"] for f in res["files"]} == {"zarr"} and {f["status"] for f in res["files"]} == {"ok"}
    members = res["doc"]["metadata"]["zarr"]["members"]
    store_doc = next(v for v in members.values() if v["format"] == "zarr")
    assert store_doc["zarr_format"] == zarr_format and store_doc["attributes"] == {"title": "buoy 7"}
    sst = store_doc["arrays"][0]
    assert (sst["path"], sst["shape"], sst["chunks"], sst["attributes"]) == ("/sst", [4, 6], [2, 3], {"units": "K"})
    chunks = [v for v in members.values() if v.get("role") == "chunk"]
    assert len(chunks) == 4 and {c["array"] for c in chunks} == {"/sst"}


# ---------------------------------------------------------------- fonts, config, pickle

def _ttf(path: pathlib.Path, flavor: str | None = None) -> None:
    from fontTools.fontBuilder import FontBuilder
    from fontTools.pens.ttGlyphPen import TTGlyphPen

    fb = FontBuilder(1000, isTTF=True)
    fb.setupGlyphOrder([".notdef", "A"])
    fb.setupCharacterMap({65: "A"})
    pen = TTGlyphPen(None)
    pen.moveTo((0, 0))
    pen.lineTo((500, 700))
    pen.lineTo((1000, 0))
    pen.closePath()
    fb.setupGlyf({".notdef": TTGlyphPen(None).glyph(), "A": pen.glyph()})
    fb.setupHorizontalMetrics({".notdef": (500, 0), "A": (1000, 0)})
    fb.setupHorizontalHeader(ascent=800, descent=-200)
    fb.setupNameTable({"familyName": "Xtract Sans", "styleName": "Bold", "version": "Version 1.2"})
    fb.setupOS2(usWeightClass=700)
    fb.setupPost()
    if flavor:
        fb.font.flavor = flavor
    fb.save(str(path))


def test_fonts_ttf_woff_afm(tmp_path):
    _ttf(tmp_path / "x.ttf")
    m = meta(tmp_path / "x.ttf", "fonts")
    assert (m["family"], m["subfamily"], m["glyphs"], m["weight_class"]) == ("Xtract Sans", "Bold", 2, 700)
    _ttf(tmp_path / "x.woff", flavor="woff")
    assert meta(tmp_path / "x.woff", "fonts")["family"] == "Xtract Sans"
    (tmp_path / "c.afm").write_text("StartFontMetrics 4.1\nFontName Courier-Bold\nFamilyName Courier\n"
                                    "Weight Bold\nFontBBox -113, -250, 749, 801\nStartCharMetrics 315\n"
                                    "EndFontMetrics\n")
    m = meta(tmp_path / "c.afm", "fonts")
    assert (m["family"], m["glyphs"], m["bbox"]) == ("Courier", 315, [-113.0, -250.0, 749.0, 801.0])


def test_config_files(tmp_path):
    (tmp_path / "setup.cfg").write_text("[metadata]\nname = demo\n[tool:pytest]\naddopts = -q\n")
    m = meta(tmp_path / "setup.cfg", "config")
    assert m["sections"] == {"metadata": {"name": "demo"}, "tool:pytest": {"addopts": "-q"}}
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "demo"\nversion = "1.0"\n'
                                             "[tool.ruff]\nline-length = 1\n")
    m = meta(tmp_path / "pyproject.toml", "config")
    assert m["project"] == {"name": "demo", "version": "1.0"} and "tool.ruff" in m["tables"]
    (tmp_path / "run.yaml").write_text("model: {name: cnn, layers: [1, 2]}\nseed: 4\n---\nother: 1\n")
    m = meta(tmp_path / "run.yaml", "config")
    assert m["documents"] == 2 and m["top_level"] == {"model": "mapping", "seed": "4"}
    # an INI file named .json: jsonxml refuses it, the INI sniff takes it
    (tmp_path / "settings.json").write_text("[paths]\ndata = /tmp\n")
    f, doc = one(tmp_path / "settings.json")
    assert (f["extractor"], f["status"]) == ("config", "ok")
    assert [c["outcome"] for c in doc["chain"][str(tmp_path / "settings.json")]] == ["not_my_format", "ok"]


def test_yaml_alias_bomb_is_walked_once(tmp_path):
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, "
              f"*a{i - 1}, *a{i - 1}, *a{i - 1}]" for i in range(1, 12)]
    (tmp_path / "bomb.yaml").write_text("\n".join(lines) + "\n")
    f, doc = one(tmp_path / "bomb.yaml")
    assert f["status"] == "ok" and doc["metadata"]["config"]["nodes"] < 200 and doc["seconds"] < 2


def test_pickle_is_read_by_opcodes_never_loaded(tmp_path):
    import pandas as pd

    (tmp_path / "frame.pkl").write_bytes(pickle.dumps(pd.DataFrame({"a": [1, 2]})))
    m = meta(tmp_path / "frame.pkl", "pickle")
    assert m["protocol"] == pickle.DEFAULT_PROTOCOL and m["complete"]
    assert any(g.startswith("pandas") and g.endswith(".DataFrame") for g in m["globals"]), m["globals"]
    assert "numpy._core.multiarray._reconstruct" in m["globals"] and "pandas" in m["top_modules"]
    assert not any(g.startswith("ndarray") for g in m["globals"])  # names come from the memo, not a guess


# ---------------------------------------------------------------- documents and text

def test_pdf_without_text_layer(tmp_path):
    from pypdf import PdfWriter

    w = PdfWriter()
    w.add_blank_page(width=612, height=792)
    w.add_blank_page(width=595, height=842)
    w.add_metadata({"/Title": "Scan 12", "/Producer": "scanner"})
    with open(tmp_path / "scan.pdf", "wb") as fh:
        w.write(fh)
    m = meta(tmp_path / "scan.pdf", "keyword")
    assert (m["pages"], m["has_text"], m["n_words"]) == (2, False, 0)
    assert m["page_sizes_pt"] == {"612x792": 1, "595x842": 1} and m["document_info"]["Title"] == "Scan 12"


def test_html_title_meta_and_markdown_headings(tmp_path):
    (tmp_path / "p.html").write_text('<html><head><title>Beam line 4</title><meta name="author" content="ana">'
                                     "</head><body><h1>Setup</h1><script>x()</script></body></html>")
    m = meta(tmp_path / "p.html", "keyword")
    assert (m["title"], m["meta"], m["headings"]) == ("Beam line 4", {"author": "ana"}, ["Setup"])
    (tmp_path / "figs.html").write_text("<html><body><img src='a.png'><script>1</script></body></html>")
    assert meta(tmp_path / "figs.html", "keyword")["has_text"] is False  # no text is a fact, not an error
    (tmp_path / "r.md").write_text("# Results\nsome text here\n## Calibration\nmore\n")
    assert meta(tmp_path / "r.md", "keyword")["headings"] == ["Results", "Calibration"]


def test_xml_with_external_dtd_is_read_without_fetching(tmp_path):
    svg = ('<?xml version="1.0"?>\n<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" '
           '"http://127.0.0.1:9/svg11.dtd">\n<svg xmlns="http://www.w3.org/2000/svg" width="72pt" height="72pt" '
           'viewBox="0 0 72 72"><title>Logo</title><rect/></svg>')
    (tmp_path / "a.svg").write_text(svg)
    m = meta(tmp_path / "a.svg", "jsonxml")
    assert m["doctype"]["system_id"] == "http://127.0.0.1:9/svg11.dtd" and m["doctype"]["external_dtd_skipped"]
    assert m["svg"] == {"width": "72pt", "height": "72pt", "viewBox": "0 0 72 72", "title": "Logo"}
    vot = ('<?xml version="1.0"?><!DOCTYPE VOTABLE SYSTEM "http://127.0.0.1:9/VOTable.dtd"><VOTABLE version="1.1">'
           '<RESOURCE><TABLE name="cat"><FIELD name="ra" datatype="double" unit="deg" ucd="pos.eq.ra"/>'
           "</TABLE></RESOURCE></VOTABLE>")
    (tmp_path / "v.xml").write_text(vot)
    m = meta(tmp_path / "v.xml", "jsonxml")["votable"]
    assert m["tables"] == [{"name": "cat"}] and m["fields"][0]["ucd"] == "pos.eq.ra"


def test_fits_header_saved_as_text(tmp_path):
    cards = ["SIMPLE  =                    T", "BITPIX  =                  -32", "NAXIS   =                    2",
             "NAXIS1  =                 2048", "NAXIS2  =                 1024", "CTYPE1  = 'RA---TAN'", "END"]
    (tmp_path / "wcs.hdr").write_text("\n".join(cards) + "\n")
    m = meta(tmp_path / "wcs.hdr", "fits")
    assert m["format"] == "fits-header" and m["hdus"][0]["shape"] == [1024, 2048]
    assert m["hdus"][0]["header"]["CTYPE1"] == "RA---TAN"


def test_ecsv_and_commented_header_tables(tmp_path):
    (tmp_path / "t.ecsv").write_text("# %ECSV 1.0\n# ---\n# datatype:\n# - {name: wave, unit: nm, datatype: float64}\n"
                                     "# - {name: flux, unit: Jy, datatype: float64}\nwave flux\n500 1.5\n510 1.7\n")
    m = meta(tmp_path / "t.ecsv", "tabular")
    assert m["format"] == "ecsv" and m["rows"] == 2
    assert [(c["name"], c.get("unit")) for c in m["columns"]] == [("wave", "nm"), ("flux", "Jy")]
    (tmp_path / "c.dat").write_text("# a b c\n# a note\n1 2 3\n4 5 6\n")
    m = meta(tmp_path / "c.dat", "tabular")
    assert m["commented_header"] and [c["name"] for c in m["columns"]] == ["a", "b", "c"] and m["rows"] == 2


def test_geotiff_tags(tmp_path):
    from PIL import Image, TiffImagePlugin

    info = TiffImagePlugin.ImageFileDirectory_v2()
    info[33550] = (0.5, 0.5, 0.0)
    info.tagtype[33550] = 12
    info[34735] = (1, 1, 0, 2, 1024, 0, 1, 2, 2048, 0, 1, 4326)
    info.tagtype[34735] = 3
    info[270] = "sea surface temperature"
    Image.new("F", (8, 4)).save(tmp_path / "g.tif", tiffinfo=info)
    m = meta(tmp_path / "g.tif", "images")
    assert m["tiff_tags"]["ImageDescription"] == "sea surface temperature"
    assert m["tiff_tags"]["geotiff"]["keys"] == {"GTModelType": 2, "GeographicType": 4326}
    assert m["tiff_tags"]["geotiff"]["ModelPixelScale"] == [0.5, 0.5, 0.0]


def test_office_and_databases(tmp_path):
    core = ('<cp:coreProperties xmlns:cp="http://schemas.openxmlformats.org/package/2006/metadata/core-properties" '
            'xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>Lab notes</dc:title>'
            "<dc:creator>ana</dc:creator></cp:coreProperties>")
    with zipfile.ZipFile(tmp_path / "n.docx", "w") as zf:
        zf.writestr("[Content_Types].xml", "<Types/>")
        zf.writestr("word/document.xml", "<w:document xmlns:w='urn:w'/>")
        zf.writestr("docProps/core.xml", core)
        zf.writestr("docProps/app.xml", "<Properties><Pages>3</Pages><Application>Word</Application></Properties>")
    m = meta(tmp_path / "n.docx", "office")
    assert (m["format"], m["core"]["title"], m["app"]["Pages"]) == ("docx", "Lab notes", "3")
    con = sqlite3.connect(tmp_path / "runs.sqlite")
    con.execute("CREATE TABLE runs (id INTEGER PRIMARY KEY, energy REAL)")
    con.executemany("INSERT INTO runs (energy) VALUES (?)", [(1.0,), (2.0,)])
    con.commit()
    con.close()
    m = meta(tmp_path / "runs.sqlite", "databases")
    assert m["tables"] == [{"name": "runs", "columns": [{"name": "id", "type": "INTEGER", "pk": True},
                                                        {"name": "energy", "type": "REAL", "pk": False}],
                            "max_rowid": 2}]


# ---------------------------------------------------------------- seismic

def mseed_record(seq: int, start_second: int, n: int = 100) -> bytes:
    head = bytearray(64)
    head[0:6] = f"{seq:06d}".encode()
    head[6:8] = b"D "
    head[8:13], head[13:15], head[15:18], head[18:20] = b"ANMO ", b"00", b"BHZ", b"IU"
    struct.pack_into(">HHBBBBH", head, 20, 2024, 32, 0, 0, start_second, 0, 0)
    struct.pack_into(">Hhh", head, 30, n, 20, 1)
    head[39] = 1
    struct.pack_into(">HH", head, 44, 64, 48)
    struct.pack_into(">HHBBBB", head, 48, 1000, 0, 3, 1, 9, 0)  # int32, big endian, 512-byte records
    return bytes(head) + struct.pack(f">{n}i", *range(n)) + b"\x00" * (512 - 64 - 4 * n)


def test_miniseed_and_sac(tmp_path):
    (tmp_path / "a.mseed").write_bytes(mseed_record(1, 0) + mseed_record(2, 5))
    m = meta(tmp_path / "a.mseed", "seismic")
    assert (m["n_records"], m["record_length"], m["encodings"]) == (2, 512, ["int32"])
    t = m["traces"][0]
    assert (t["id"], t["sample_rate"], t["samples"]) == ("IU.ANMO.00.BHZ", 20.0, 200)
    assert t["start"] == "2024-02-01T00:00:00+00:00" and t["end"] == "2024-02-01T00:00:10+00:00"
    (tmp_path / "x").write_bytes(mseed_record(1, 0))  # no extension: the sniff finds it
    assert meta(tmp_path / "x", "seismic")["n_records"] == 1
    floats = [-12345.0] * 70
    floats[0], floats[5], floats[31], floats[32] = 0.01, 0.0, 34.9, -106.5
    ints = [-12345] * 40
    ints[:10] = [2024, 32, 0, 0, 0, 0, 6, 0, 0, 300]
    ints[35] = 1
    strings = b"ANMO    " + b"-12345".ljust(16) + b"\x00" * 136 + b"BHZ     IU      " + b"\x00" * 16
    (tmp_path / "a.sac").write_bytes(struct.pack("<70f40i", *floats, *ints) + strings + b"\x00" * 1200)
    m = meta(tmp_path / "a.sac", "seismic")
    assert (m["kstnm"], m["kcmpnm"], m["knetwk"], m["npts"], m["sample_rate"]) == ("ANMO", "BHZ", "IU", 300, 100.0)
    assert m["stla"] == pytest.approx(34.9, abs=1e-4)


# ---------------------------------------------------------------- the chain and its record

def test_binary_garbage_with_a_specific_extension_stays_an_error(tmp_path):
    (tmp_path / "g.sav").write_bytes(bytes((i * 131 + 7) % 256 for i in range(4096)))
    f, doc = one(tmp_path / "g.sav")
    assert f["status"] == "error" and doc["errors"][0]["type"] == "NotMyFormat"


def test_a_text_that_is_not_json_falls_through_to_free_text(tmp_path):
    (tmp_path / "page.tpl").write_text("{% extends 'base' %}\n{% block body %}Results of the survey{% endblock %}\n")
    f, doc = one(tmp_path / "page.tpl")
    assert (f["extractor"], f["status"]) == ("keyword", "ok")
    assert doc["chain"][str(tmp_path / "page.tpl")][0]["extractor"] == "jsonxml"


def test_every_new_extractor_is_registered_with_a_version():
    from extractors.registry import default_registry

    reg = default_registry()
    for name in ("matlab", "idl", "audio", "columnar", "zarr", "grib", "dicom", "fonts", "config", "pickle",
                 "neuro", "seismic", "office", "databases"):
        assert reg.get(name).version
    buf = io.BytesIO()
    assert reg.for_extension("parquet")[1].name == "columnar" and buf.getvalue() == b""


def test_a_failed_content_guess_falls_through(tmp_path):
    """A file whose extension says nothing was routed by a sniff; when that extractor fails the guess was
    wrong (a template is not XML, a report is not a table) and the chain goes on to free text."""
    (tmp_path / "card.html.jinja").write_text('<div class="card">{{ title }}\n<p>Results &nbsp; of the run</p>\n')
    f, doc = one(tmp_path / "card.html.jinja")
    assert (f["extractor"], f["status"]) == ("keyword", "ok")
    assert [c["outcome"] for c in doc["chain"][str(tmp_path / "card.html.jinja")]] == ["error", "ok"]
    (tmp_path / "montage.elc").write_text("# ASA electrode file\nReferenceLabel avg\nUnitPosition mm\n"
                                          "NumberPositions= 2\nPositions\n-86.0 -22.2 -68.0\n85.8 -20.6 -69.1\n"
                                          "Labels\nLPA\nRPA\n")
    assert one(tmp_path / "montage.elc")[0]["status"] == "ok"
    # a damaged file whose name promised the format stays an error record
    (tmp_path / "bad.csv").write_text('a,b\n1,2\n"never closed,3\n4,5\n')
    assert one(tmp_path / "bad.csv")[0]["status"] == "error"


def test_shapefile_prj_and_gettext(tmp_path):
    # a one-point shapefile and its index, as the ESRI specification lays them out
    def header(words: int) -> bytes:
        return struct.pack(">7i", 9994, 0, 0, 0, 0, 0, words) + struct.pack("<2i4d4d", 1000, 1, 2.0, 48.0, 2.5,
                                                                           48.5, 0, 0, 0, 0)
    point = struct.pack(">2i", 1, 10) + struct.pack("<i2d", 1, 2.0, 48.0)
    (tmp_path / "sites.shp").write_bytes(header((100 + len(point)) // 2) + point)
    (tmp_path / "sites.shx").write_bytes(header(54) + struct.pack(">2i", 50, 10))
    m = meta(tmp_path / "sites.shp", "gis")
    assert (m["shape_type"], m["records"], m["bbox"]) == ("point", 1, [2.0, 48.0, 2.5, 48.5])
    assert meta(tmp_path / "sites.shx", "gis")["records"] == 1
    (tmp_path / "sites.prj").write_text('GEOGCS["GCS_WGS_1984",DATUM["D_WGS_1984",SPHEROID["WGS_1984",6378137.0,'
                                        '298.257223563]],PRIMEM["Greenwich",0.0],UNIT["Degree",0.0174532925199433]]')
    m = meta(tmp_path / "sites.prj", "gis")
    assert (m["crs_name"], m["kind"], m["datum"], m["unit"]) == ("GCS_WGS_1984", "geographic", "D_WGS_1984", "Degree")
    header_entry = b"Project-Id-Version: demo 1.0\nLanguage: de\nContent-Type: text/plain; charset=UTF-8\n"
    strings = [(b"", header_entry), (b"Hello", b"Hallo")]
    n = len(strings)
    orig_table, trans_table, data = 28, 28 + 8 * n, b""
    offset = 28 + 16 * n
    otab, ttab = b"", b""
    for msgid, _ in strings:
        otab += struct.pack("<2I", len(msgid), offset + len(data))
        data += msgid + b"\x00"
    for _, msgstr in strings:
        ttab += struct.pack("<2I", len(msgstr), offset + len(data))
        data += msgstr + b"\x00"
    mo = struct.pack("<7I", 0x950412DE, 0, n, orig_table, trans_table, 0, 0) + otab + ttab + data
    (tmp_path / "de.mo").write_bytes(mo)
    import gettext

    assert gettext.GNUTranslations(io.BytesIO(mo)).gettext("Hello") == "Hallo"  # a real catalogue
    m = meta(tmp_path / "de.mo", "gis")
    assert (m["messages"], m["language"], m["header"]["Project-Id-Version"]) == (2, "de", "demo 1.0")


def test_python2_pickle_keeps_its_globals(tmp_path):
    (tmp_path / "old.p").write_bytes(b"cnumpy.core.multiarray\n_reconstruct\np0\n(S'caf\xe9'\np1\ntp2\nRp3\n.")
    m = meta(tmp_path / "old.p", "pickle")
    assert m["globals"] == ["numpy.core.multiarray._reconstruct"] and m["stopped"]


def test_spss_sav_shares_its_extension_with_idl(tmp_path):
    import pandas as pd
    import pyreadstat

    frame = pd.DataFrame({"age": [30.0, 40.0, 51.0], "city": ["Oslo", "Bergen", "Tromsø"]})
    pyreadstat.write_sav(frame, str(tmp_path / "survey.sav"), column_labels=["Age in years", None],
                         file_label="wave 3")
    f, doc = one(tmp_path / "survey.sav")
    assert (f["extractor"], f["status"]) == ("columnar", "ok")
    m = doc["metadata"]["columnar"]
    assert (m["format"], m["rows"], m["file_label"], m["n_columns"]) == ("spss-sav", 3, "wave 3", 2)
    assert m["columns"][0]["label"] == "Age in years" and m["columns"][1]["type"].startswith("string")
    assert [c["extractor"] for c in doc["chain"][str(tmp_path / "survey.sav")]] == ["idl", "columnar"]


def test_postscript_and_meshes(tmp_path):
    from PIL import Image

    Image.new("RGB", (30, 20), (200, 0, 0)).save(tmp_path / "fig.eps")
    m = meta(tmp_path / "fig.eps", "graphics")
    assert (m["format"], m["BoundingBox"]) == ("eps", [0.0, 0.0, 30.0, 20.0])
    (tmp_path / "m.ply").write_text("ply\nformat ascii 1.0\ncomment scanned bone\nelement vertex 3\nproperty float x\n"
                                    "property float y\nproperty float z\nelement face 1\n"
                                    "property list uchar int vertex_indices\nend_header\n"
                                    "0 0 0\n1 0 0\n0 1 0\n3 0 1 2\n")
    m = meta(tmp_path / "m.ply", "graphics")
    assert m["elements"]["vertex"] == {"count": 3, "properties": ["x", "y", "z"]} and m["comments"] == ["scanned bone"]
    (tmp_path / "g.vtk").write_text("# vtk DataFile Version 3.0\nflow field\nASCII\nDATASET STRUCTURED_POINTS\n"
                                    "DIMENSIONS 2 2 1\nORIGIN 0 0 0\nSPACING 1 1 1\nPOINT_DATA 4\n")
    m = meta(tmp_path / "g.vtk", "graphics")
    assert (m["title"], m["dataset"], m["dimensions"]) == ("flow field", "STRUCTURED_POINTS", [2, 2, 1])
    tri = struct.pack("<12fH", *([0.0] * 12), 0)
    (tmp_path / "part.stl").write_bytes(b"made by hand".ljust(80, b"\x00") + struct.pack("<I", 2) + tri * 2)
    assert meta(tmp_path / "part.stl", "graphics")["triangles"] == 2


def test_templated_yaml_is_text_broken_yaml_an_error(tmp_path):
    (tmp_path / "meta.yaml").write_text('{% set version = "1.0" %}\npackage:\n  name: demo\n  version: {{ version }}\n'
                                        "  {% if win %}skip: true{% endif %}\n")
    f, _ = one(tmp_path / "meta.yaml")
    assert (f["extractor"], f["status"]) == ("keyword", "ok")
    (tmp_path / "bad.yaml").write_text("a: [1, 2\nb: 3\n")
    f, doc = one(tmp_path / "bad.yaml")
    assert f["status"] == "error" and "invalid YAML" in doc["errors"][0]["message"]


def test_notebook_and_geojson_profiles(tmp_path):
    nb = {"nbformat": 4, "nbformat_minor": 5, "metadata": {"kernelspec": {"name": "python3", "language": "python"},
                                                           "language_info": {"name": "python", "version": "3.11"}},
          "cells": [{"cell_type": "markdown", "source": ["# Calibration\n", "text"]},
                    {"cell_type": "code", "source": "x = 1", "outputs": []}]}
    (tmp_path / "a.ipynb").write_text(json.dumps(nb))
    m = meta(tmp_path / "a.ipynb", "jsonxml")["notebook"]
    assert (m["kernel"], m["language"], m["cells"], m["headings"]) == ("python3", "python",
                                                                       {"markdown": 1, "code": 1}, ["Calibration"])
    gj = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [1, 2]}, "properties": {"name": "a"}}]}
    (tmp_path / "s.geojson").write_text(json.dumps(gj))
    m = meta(tmp_path / "s.geojson", "jsonxml")["geojson"]
    assert (m["n_features"], m["geometry_types"], m["property_keys"]) == (1, {"Point": 1}, ["name"])


def daf_spk(segments: list[tuple[float, float, int, int]]) -> bytes:
    """A DAF/SPK as NAIF lays it out: file record, one summary record, one (empty) name record."""
    file_record = bytearray(1024)
    file_record[:8] = b"DAF/SPK "
    struct.pack_into("<ii", file_record, 8, 2, 6)  # ND=2 doubles, NI=6 ints per summary
    file_record[16:76] = b"TEST KERNEL".ljust(60)
    struct.pack_into("<iii", file_record, 76, 2, 2, 4 * 128 + 1)  # FWARD, BWARD, FREE
    file_record[88:96] = b"LTL-IEEE"
    summary = bytearray(1024)
    struct.pack_into("<3d", summary, 0, 0.0, 0.0, float(len(segments)))
    for i, (start, end, target, center) in enumerate(segments):
        struct.pack_into("<2d6i", summary, 24 + 40 * i, start, end, target, center, 1, 2, 513, 600)
    return bytes(file_record) + bytes(summary) + bytes(1024) + bytes(1024)


def test_spice_kernel_segments_and_coverage(tmp_path):
    day = 86400.0
    (tmp_path / "moon.bsp").write_bytes(daf_spk([(0.0, 10 * day, 301, 3), (0.0, 20 * day, 399, 3)]))
    m = meta(tmp_path / "moon.bsp", "spice")
    assert (m["kind"], m["internal_name"], m["n_segments"]) == ("DAF/SPK", "TEST KERNEL", 2)
    assert m["coverage"] == ["2000-01-01T12:00:00+00:00", "2000-01-21T12:00:00+00:00"]
    assert m["bodies"] == {"3": "EARTH BARYCENTER", "301": "MOON", "399": "EARTH"}


def test_preload_hints_name_importable_modules():
    import importlib

    from extractors.registry import default_registry

    reg = default_registry()
    mods = reg.preload_modules(sorted(reg.by_name))
    assert {"pandas", "pydicom", "h5py", "netCDF4"} <= set(mods) and len(mods) == len(set(mods))
    for mod in mods:
        importlib.import_module(mod)  # every hint is installed by `make install`
    assert reg.preload_modules(["physical", "no-such-extractor"]) == []


def test_bench_corpus_selection_and_scoring(tmp_path):
    """bench/corpus.py keeps data files (not code), capped and deterministic; extract_corpus scores each tool."""
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
    from bench import corpus
    from bench.extract_corpus import exif_outcome, score, tika_outcome

    site = tmp_path / "site"
    pkg = site / "scipy" / "io" / "tests" / "data"
    pkg.mkdir(parents=True)
    for name in ("a.mat", "b.sav", "c.wav", "mod.py", "ext.so", "mod.pyc"):
        (pkg / name).write_bytes(b"x")
    paths = corpus.build_list(str(site), ("scipy", "absent"), per_package=2)
    assert len(paths) == 2 and all(p.endswith((".mat", ".sav", ".wav")) for p in paths)
    assert paths == corpus.build_list(str(site), ("scipy",), per_package=2)  # same choice every time
    assert corpus.copy_corpus(paths, str(site), str(tmp_path / "repo"), repeat=2) == 4
    assert len(list((tmp_path / "repo").rglob("*.*"))) == 5  # 4 copies + the stamp
    generic = {"Content-Type": "x", "X-TIKA:Parsed-By": ["p"], "tika_batch_fs:relative_path": "a"}
    assert tika_outcome([generic]) == "none"
    assert tika_outcome({"Content-Type": "x", "dc:title": "t"}) == "content"
    assert tika_outcome({"X-TIKA:EXCEPTION:container_exception": "boom"}) == "error"
    assert exif_outcome({"SourceFile": "a", "File:FileSize": "1 kB", "ExifTool:Error": "bad"}) == "error"
    assert exif_outcome({"SourceFile": "a", "File:ImageWidth": 4}) == "content"
    assert score({"a": "content", "b": "error", "c": "none", "d": "content"}, 2.0)["content_fraction"] == 0.5
