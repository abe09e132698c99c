"""Dispatch: extension, then magic bytes, then a text sniff; wrong extensions; pickle; plugins; the flow."""

from __future__ import annotations

import json
import logging
import os
import pathlib
import pickle
import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import pytest

from extractors.batch import extract_group
from extractors.detect import signature_mime, sniff_text
from extractors.registry import default_registry, reload_registry
from tests.test_extractors_formats import write_fits, write_h5, write_nc, write_png


def one(path: pathlib.Path) -> dict:
    st = path.stat()
    name = path.name
    ext = name.split(".", 1)[1].lower() if "." in name.lstrip(".") else ""
    res = extract_group({"group_id": "g", "files": [{"path": str(path), "size": st.st_size, "mtime": st.st_mtime,
                                                       "extension": ext, "mime": None}]})
    return {**res["files"][0], "doc": res["doc"]}


class Boom:
    """Unpickling this touches a marker file: proof that nothing ever unpickles."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


def write_corpus(root: pathlib.Path) -> dict[str, tuple[pathlib.Path, str | None, str, str]]:
    """name -> (path, expected extractor, expected status, expected mime) for a mixed repository."""
    root.mkdir(parents=True, exist_ok=True)
    np.save(root / "arr.npy", np.arange(6).reshape(2, 3))
    (root / "t.csv").write_text("a,b\n1,2\n3,4\n")
    (root / "doc.json").write_text('{"k": [1, 2]}')
    (root / "notes.md").write_text("# Notes\nBeam time went well today.\n")
    (root / "code.py").write_text("import os\n")
    (root / "lib.h").write_text("int f(void);\n")
    with zipfile.ZipFile(root / "bundle.zip", "w") as zf:
        zf.writestr("x.txt", "x")
    (root / "evil.pkl").write_bytes(pickle.dumps(Boom(str(root.parent / "UNPICKLED")), protocol=4))
    (root / "blob.bin").write_bytes(bytes(range(256)) * 4)
    write_png(root / "photo_really_png.csv")  # wrong extension: routed by content
    write_h5(root / "scan.dat")  # silent extension: routed by content
    write_nc(root / "cdf3.nc", "NETCDF3_CLASSIC")
    write_fits(root / "sky.fits")
    (root / "table_no_ext").write_text("x\ty\n1\t2\n3\t4\n")
    (root / "prose.txt").write_text("Some words about the sample, written by hand.\nAnd another line.\n")
    return {
        "arr.npy": (root / "arr.npy", "numpy", "ok", "application/x-npy"),
        "t.csv": (root / "t.csv", "tabular", "ok", "text/csv"),
        "doc.json": (root / "doc.json", "jsonxml", "ok", "application/json"),
        "notes.md": (root / "notes.md", "keyword", "ok", "text/markdown"),
        "code.py": (root / "code.py", "python", "ok", "text/x-python"),
        "lib.h": (root / "lib.h", "c_code", "ok", "text/x-c"),
        "bundle.zip": (root / "bundle.zip", "archives", "ok", "application/zip"),
        "evil.pkl": (root / "evil.pkl", "pickle", "ok", "application/x-pickle"),  # opcodes read, never loaded
        "blob.bin": (root / "blob.bin", "physical", "unknown", "application/octet-stream"),
        "photo_really_png.csv": (root / "photo_really_png.csv", "images", "ok", "image/png"),
        "scan.dat": (root / "scan.dat", "hdf5", "ok", "application/x-hdf5"),
        "cdf3.nc": (root / "cdf3.nc", "netcdf", "ok", "application/x-netcdf"),
        "sky.fits": (root / "sky.fits", "fits", "ok", "application/fits"),
        "table_no_ext": (root / "table_no_ext", "tabular", "ok", "text/tab-separated-values"),
        "prose.txt": (root / "prose.txt", "keyword", "ok", "text/plain"),
    }


def test_every_file_of_a_mixed_corpus_is_routed(tmp_path):
    corpus = write_corpus(tmp_path / "data")
    for name, (path, extractor, status, mime) in corpus.items():
        out = one(path)
        assert (out["extractor"], out["status"], out["mime"]) == (extractor, status, mime), (name, out["error"])
    assert not (tmp_path / "UNPICKLED").exists()


@pytest.mark.parametrize("writer,name,extractor", [
    (lambda p: p.write_text("a,b\n1,2\n3,4\n"), "really_csv.h5", "tabular"),  # text where binary was promised
    (lambda p: p.write_text('{"a": 1}'), "really_json.png", "jsonxml"),
    (lambda p: write_png(p), "really_png.json", "images"),
    (lambda p: write_h5(p), "plain_h5.nc", "netcdf"),  # netCDF-4 is HDF5: consistent, and netCDF4 reads it
    (lambda p: write_nc(p, "NETCDF3_64BIT_OFFSET"), "really_nc.h5", "netcdf"),
    (lambda p: np.save(open(p, "wb"), np.ones(3)), "really_npy.fits", "numpy"),  # noqa: SIM115
    (lambda p: write_fits(p), "really_fits.txt", "fits"),
    (lambda p: p.write_bytes(pickle.dumps({"a": 1}, protocol=5)), "really_pickle.csv", "pickle"),
])
def test_wrong_extension_is_routed_by_content(tmp_path, writer, name, extractor):
    path = tmp_path / name
    writer(path)
    out = one(path)
    assert out["extractor"] == extractor, out["error"]
    assert out["status"] == ("unknown" if extractor == "physical" else "ok")


def test_userblock_hdf5_and_matlab5_mat(tmp_path):
    import h5py

    with h5py.File(tmp_path / "v73.mat", "w", userblock_size=512) as f:  # how MATLAB 7.3 files look
        f.create_dataset("A", data=np.eye(2))
    with open(tmp_path / "v73.mat", "r+b") as fh:
        fh.write(b"MATLAB 7.3 MAT-file, Platform: GLNXA64")
    out = one(tmp_path / "v73.mat")
    assert (out["extractor"], out["status"]) == ("matlab", "ok")
    mat = out["doc"]["metadata"]["matlab"]
    assert (mat["version"], mat["platform"]) == ("7.3", "GLNXA64")
    assert mat["variables"] == [{"name": "A", "class": "", "shape": [2, 2], "hdf5_dtype": "float64"}]
    (tmp_path / "plain.h5").write_bytes((tmp_path / "v73.mat").read_bytes()[512:])  # the same HDF5, no header
    # a v5 header with nothing after it: the header still says what the file is
    (tmp_path / "v5.mat").write_bytes(b"MATLAB 5.0 MAT-file, Platform: x".ljust(124, b" ") + b"\x00\x01IM")
    out = one(tmp_path / "v5.mat")
    assert (out["extractor"], out["status"], out["mime"]) == ("matlab", "ok", "application/x-matlab-data")
    assert out["doc"]["metadata"]["matlab"]["n_variables"] == 0


def test_related_group_holds_each_members_result(tmp_path):
    """A matio-style group (same stem): every member runs its own extractor; results keyed by path."""
    h5, meta, table = write_h5(tmp_path / "scan7.h5"), tmp_path / "scan7.json", tmp_path / "scan7.csv"
    meta.write_text('{"operator": "ana", "energy_kev": 12.5}')
    table.write_text("frame,counts\n0,10\n1,12\n")
    files = [{"path": str(p), "size": p.stat().st_size, "mtime": p.stat().st_mtime, "extension": ext, "mime": None}
             for p, ext in ((h5, "h5"), (meta, "json"), (table, "csv"))]
    doc = extract_group({"group_id": "scan7", "files": files})["doc"]
    assert doc["extractor"] == "matio" and doc["errors"] == []
    assert set(doc["metadata"]) == {"hdf5", "jsonxml", "tabular"}
    assert doc["metadata"]["hdf5"]["members"][str(h5)]["n_datasets"] == 2
    assert doc["metadata"]["jsonxml"]["members"][str(meta)]["keys"] == ["energy_kev", "operator"]
    assert doc["metadata"]["tabular"]["members"][str(table)]["rows"] == 2


@pytest.mark.parametrize("head,mime", [
    (b"time,value\n0,1.5\n1,2.5\n2,3.5\n", "text/csv"),
    (b"# logger v2\n# units K\nt;v\n0;1\n1;2\n2;3\n", "text/csv"),
    (b"  1.0  2.0  3.0\n  4.0  5.0  6.0\n", "text/csv"),
    (b"Dear colleague, thanks for the data.\nBest regards, A.\n", "text/plain"),
    (b"one two three\nfour five six\nseven eight nine\n", "text/plain"),  # same word counts, no numbers
    (b'[{"a": 1}]', "application/json"),
    (b"<catalog><item/></catalog>", "application/xml"),
    (b"<!DOCTYPE html><html></html>", "text/html"),
    (b"#!/usr/bin/env python3\nprint(1)\n", "text/x-python"),
    (bytes(range(256)), "application/octet-stream"),
])
def test_text_sniff(head, mime):
    assert signature_mime(head) is None
    assert sniff_text(head) == mime


def test_registry_covers_every_builtin_extension():
    reg = default_registry()
    expected = {"csv": "tabular", "tsv": "tabular", "xlsx": "tabular", "json": "jsonxml", "json.gz": "jsonxml",
                "xml": "jsonxml", "md": "keyword", "rst": "keyword", "pdf": "keyword", "png": "images",
                "jpg": "images", "tif": "images", "gif": "images", "bmp": "images", "webp": "images",
                "h5": "hdf5", "hdf5": "hdf5", "he5": "hdf5", "nc": "netcdf", "nc4": "netcdf", "cdf": "netcdf",
                "py": "python", "c": "c_code", "h": "c_code", "cpp": "c_code", "hpp": "c_code", "zip": "archives",
                "tar": "archives", "tar.gz": "archives", "gz": "archives", "npy": "numpy", "npz": "numpy",
                "fits": "fits", "fit": "fits", "fits.gz": "fits", "pkl": "pickle", "mat": "matlab", "dcm": "dicom",
                "sav": "idl", "ttf": "fonts", "afm": "fonts", "ini": "config", "toml": "config", "yaml": "config"}
    got = {ext: reg.for_extension(ext)[1].name for ext in expected}
    assert got == expected
    assert reg.for_extension("pkl")[0] == "application/x-pickle"


# ---------------------------------------------------------------- plugins (entry point group xtract.extractors)

PLUGIN_MODULE = '''
from extractors.base import Extractor


def extract_xyz(path):
    with open(path) as fh:
        return {"lines": sum(1 for _ in fh), "plugin": True}


def broken():
    raise RuntimeError("this plugin is broken on purpose")


XYZ = Extractor(name="xyz", version="0.3", func=extract_xyz, extensions=frozenset({"xyz"}),
                mimes=frozenset({"chemical/x-xyz"}))
'''


@pytest.fixture
def plugin_dir(tmp_path):
    """A real installed distribution: a module plus a dist-info whose entry_points.txt names it."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "xyz_plugin.py").write_text(PLUGIN_MODULE)
    info = site / "xyz_plugin-0.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: xyz-plugin\nVersion: 0.3\n")
    (info / "entry_points.txt").write_text(
        "[xtract.extractors]\nxyz = xyz_plugin:XYZ\nbroken = xyz_plugin:broken\n")
    sys.path.insert(0, str(site))
    try:
        yield site
    finally:
        sys.path.remove(str(site))
        sys.modules.pop("xyz_plugin", None)
        reload_registry()


def test_plugin_entry_point_is_dispatched(plugin_dir, tmp_path):
    seen: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())  # type: ignore[method-assign]
    logging.getLogger("extractors.registry").addHandler(handler)
    try:
        reg = reload_registry()
    finally:
        logging.getLogger("extractors.registry").removeHandler(handler)
    assert reg.get("xyz").version == "0.3"
    assert any("broken" in m and "on purpose" in m for m in seen)  # logged; dispatch still works
    path = tmp_path / "water.xyz"
    path.write_text("3\nwater\nO 0 0 0\n")
    out = one(path)
    assert (out["extractor"], out["status"], out["mime"]) == ("xyz", "ok", "chemical/x-xyz")
    assert out["doc"]["metadata"] == {"xyz": {"lines": 3, "plugin": True}}
    assert out["doc"]["extractor_version"] == "0.3"
    assert one(write_png(tmp_path / "p.png"))["extractor"] == "images"  # built-ins unaffected


def test_plugin_is_found_by_a_fresh_worker_process(plugin_dir, tmp_path):
    path = tmp_path / "w.xyz"
    path.write_text("1\nx\n")
    code = textwrap.dedent(f"""
        import json
        from extractors.batch import extract_group
        res = extract_group({{"group_id": "g", "files": [{{"path": {str(path)!r}, "size": 4, "mtime": 0.0,
                                                          "extension": "xyz", "mime": None}}]}})
        print(json.dumps(res["files"][0]))
    """)
    repo = pathlib.Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(plugin_dir), str(repo)])}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert (out["extractor"], out["status"]) == ("xyz", "ok")


# ---------------------------------------------------------------- the flow over a mixed corpus

@pytest.mark.slow
def test_flow_indexes_extractor_and_mime(tmp_path):
    from flows.endpoint_flow import xtract_endpoint
    from tasks.pools.options import ExtractionOptions
    from tests.helpers import VALIDATE, check_contract
    from xtract_blocks import XtractEndpoint

    corpus = write_corpus(tmp_path / "data")
    out = tmp_path / "out"
    ep = XtractEndpoint(dirs=[str(tmp_path / "data")], local_mdata_path=str(out), grouper="file_is_group")
    state = xtract_endpoint(ep, extraction=ExtractionOptions(workers=2), return_state=True)
    assert state.is_completed(), state.message
    idx = check_contract(out, expected_files=len(corpus))
    rows = {pathlib.Path(p).name: (e, s, m) for p, e, s, m in zip(idx["path"], idx["extractor"], idx["status"],
                                                                   idx["mime"], strict=True)}
    assert rows == {name: (ex, st, mime) for name, (_, ex, st, mime) in corpus.items()}
    assert not (tmp_path / "UNPICKLED").exists()
    proc = subprocess.run([*VALIDATE, str(out), "--files", str(len(corpus))],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
