"""Binary and structured formats: files written by the real libraries, exact values read back.

Each format also gets malformed variants (truncated, empty, garbage) that must come
back from ``extract_group`` as error records with the exception class, never as a
crash of the batch. No Prefect here: these call the extractor functions directly.
"""

from __future__ import annotations

import gzip
import io
import json
import pathlib
import tarfile
import zipfile

import numpy as np
import pytest

from extractors import archives
from extractors.archives import extract_archives
from extractors.batch import extract_group
from extractors.fits import extract_fits
from extractors.hdf5 import extract_hdf5
from extractors.images import extract_images
from extractors.jsonxml import extract_jsonxml
from extractors.netcdf import extract_netcdf
from extractors.numpy_files import extract_numpy


def group_of(*paths: pathlib.Path) -> dict:
    files = [{"path": str(p), "size": p.stat().st_size, "mtime": p.stat().st_mtime,
              "extension": p.name.split(".", 1)[-1] if "." in p.name else "", "mime": None} for p in paths]
    return {"group_id": "g", "files": files}


def outcome(path: pathlib.Path) -> tuple[dict, dict]:
    res = extract_group(group_of(path))
    return res["files"][0], res["doc"]


# ---------------------------------------------------------------- writers (also used by the dispatch tests)

def write_h5(path: pathlib.Path) -> pathlib.Path:
    import h5py

    with h5py.File(path, "w") as f:
        f.attrs["title"] = "run 7"
        g = f.create_group("scan")
        g.attrs["energy"] = 12.5
        ds = g.create_dataset("img", data=np.arange(24, dtype="u2").reshape(4, 6), compression="gzip",
                              compression_opts=4, chunks=(2, 3))
        ds.attrs["units"] = "counts"
        f.create_dataset("big", shape=(1000, 1000), dtype="f8")  # never written, never read
    return path


def write_nc(path: pathlib.Path, fmt: str = "NETCDF4") -> pathlib.Path:
    import netCDF4

    with netCDF4.Dataset(path, "w", format=fmt) as ds:
        ds.title = "station data"
        ds.createDimension("time", None)
        ds.createDimension("lat", 3)
        v = ds.createVariable("temp", "f4", ("time", "lat"))
        v.units = "K"
        v[0:2, :] = np.ones((2, 3))
        if fmt == "NETCDF4":
            sub = ds.createGroup("instrument")
            sub.createDimension("x", 2)
            sub.createVariable("gain", "i4", ("x",))
    return path


def write_png(path: pathlib.Path, fmt: str = "PNG") -> pathlib.Path:
    from PIL import Image

    img = Image.new("RGB", (40, 30), (255, 0, 0))
    img.paste((0, 0, 255), (0, 0, 40, 10))  # a third blue, two thirds red
    kwargs = {}
    if fmt == "JPEG":
        exif = Image.Exif()
        exif[0x010F] = "ACME"  # Make
        exif[0x0110] = "Cam 1"  # Model
        kwargs["exif"] = exif
    img.save(path, fmt, **kwargs)
    return path


def write_fits(path: pathlib.Path, *, truncate: int = 0) -> pathlib.Path:
    """A primary image HDU (int16, 3x4) plus a binary table extension with 2 rows."""

    def header(cards: list[str]) -> bytes:
        text = "".join(c.ljust(80) for c in cards + ["END"])
        return text.ljust(-(-len(text) // 2880) * 2880).encode("ascii")

    def pad(data: bytes) -> bytes:
        return data + b"\0" * (-len(data) % 2880)

    def card(key: str, value: object) -> str:
        text = value if isinstance(value, str) else ("T" if value is True else str(value))
        return f"{key:<8}= {text:>20}"

    primary = header([card("SIMPLE", True), card("BITPIX", 16), card("NAXIS", 2), card("NAXIS1", 4),
                      card("NAXIS2", 3), "OBJECT  = 'M31 ''core'''       / target", card("EXPTIME", "1.5D2"),
                      "COMMENT written by hand"])
    image = pad(np.arange(12, dtype=">i2").tobytes())
    table = header(["XTENSION= 'BINTABLE'", card("BITPIX", 8), card("NAXIS", 2), card("NAXIS1", 12),
                    card("NAXIS2", 2), card("PCOUNT", 0), card("GCOUNT", 1), card("TFIELDS", 2),
                    "TTYPE1  = 'FLUX    '", "TFORM1  = 'D       '", "TUNIT1  = 'Jy      '", "TTYPE2  = 'ID      '",
                    "TFORM2  = 'J       '", "EXTNAME = 'EVENTS  '"])
    data = primary + image + table + pad(b"\1" * 24)
    path.write_bytes(data[: len(data) - truncate] if truncate else data)
    return path


def test_hdf5_tree_from_headers(tmp_path):
    r = extract_hdf5(str(write_h5(tmp_path / "a.h5")))
    assert (r["n_groups"], r["n_datasets"]) == (2, 2)
    assert r["groups"] == [{"path": "/", "attributes": {"title": "run 7"}},
                           {"path": "/scan", "attributes": {"energy": 12.5}}]
    img = next(d for d in r["datasets"] if d["path"] == "/scan/img")
    assert img["shape"] == [4, 6] and img["dtype"] == "uint16"
    assert (img["compression"], img["compression_opts"], img["chunks"]) == ("gzip", 4, [2, 3])
    assert img["attributes"] == {"units": "counts"}
    big = next(d for d in r["datasets"] if d["path"] == "/big")
    assert big["shape"] == [1000, 1000] and big["dtype"] == "float64"


@pytest.mark.parametrize("fmt", ["NETCDF4", "NETCDF3_CLASSIC", "NETCDF3_64BIT_OFFSET"])
def test_netcdf_header(tmp_path, fmt):
    r = extract_netcdf(str(write_nc(tmp_path / "a.nc", fmt)))
    assert r["format"] == fmt
    assert r["dimensions"] == {"time": {"size": 2, "unlimited": True}, "lat": {"size": 3, "unlimited": False}}
    assert r["variables"] == [{"name": "temp", "dims": ["time", "lat"], "dtype": "float32", "shape": [2, 3],
                               "attributes": {"units": "K"}}]
    assert r["global_attributes"] == {"title": "station data"}
    if fmt == "NETCDF4":
        assert r["groups"][0]["path"] == "/instrument"
        assert r["groups"][0]["variables"][0]["name"] == "gain"


def test_netcdf4_file_is_routed_to_netcdf_not_hdf5(tmp_path):
    f, doc = outcome(write_nc(tmp_path / "b.nc"))
    assert (f["extractor"], f["status"], f["mime"]) == ("netcdf", "ok", "application/x-netcdf")
    assert doc["metadata"]["netcdf"]["format"] == "NETCDF4"


# ---------------------------------------------------------------- images

def test_png_size_mode_and_dominant_colours(tmp_path):
    r = extract_images(str(write_png(tmp_path / "a.png")))
    assert (r["format"], r["width"], r["height"], r["mode"]) == ("PNG", 40, 30, "RGB")
    colours = {c["rgb"]: c["fraction"] for c in r["dominant_colours"]}
    assert colours["#ff0000"] == pytest.approx(2 / 3, abs=0.02)
    assert colours["#0000ff"] == pytest.approx(1 / 3, abs=0.02)


def test_jpeg_exif(tmp_path):
    r = extract_images(str(write_png(tmp_path / "a.jpg", "JPEG")))
    assert r["format"] == "JPEG" and (r["width"], r["height"]) == (40, 30)
    assert r["exif"]["Make"] == "ACME" and r["exif"]["Model"] == "Cam 1"
    assert r["dominant_colours"][0]["rgb"].startswith("#f")  # mostly red, JPEG-blurred


@pytest.mark.parametrize("fmt,ext", [("GIF", "gif"), ("BMP", "bmp"), ("TIFF", "tif"), ("WEBP", "webp")])
def test_other_image_formats(tmp_path, fmt, ext):
    f, doc = outcome(write_png(tmp_path / f"a.{ext}", fmt))
    assert (f["extractor"], f["status"]) == ("images", "ok")
    assert doc["metadata"]["images"]["format"] == fmt and doc["metadata"]["images"]["width"] == 40


def test_16_bit_scan_gets_a_grey_palette(tmp_path):
    from PIL import Image

    ramp = np.repeat(np.array([[0, 65535]], dtype="uint16"), 20, axis=0).repeat(10, axis=1)  # left black, right white
    Image.fromarray(ramp).save(tmp_path / "scan.tif")
    r = extract_images(str(tmp_path / "scan.tif"))
    assert r["mode"].startswith("I") and (r["width"], r["height"]) == (20, 20)
    assert {c["rgb"]: c["fraction"] for c in r["dominant_colours"]} == {"#000000": 0.5, "#ffffff": 0.5}


def test_decompression_bomb_guard_stays_on(tmp_path):
    from PIL import Image

    path = tmp_path / "bomb.png"
    Image.new("1", (12_000, 12_000)).save(path)  # 144 Mpx, ~20 KB on disk
    assert Image.MAX_IMAGE_PIXELS < 144_000_000
    f, doc = outcome(path)
    assert f["status"] == "error"
    assert doc["errors"][0]["type"] in ("DecompressionBombWarning", "DecompressionBombError")


# ---------------------------------------------------------------- json / xml

def test_json_structure_with_numeric_lists(tmp_path):
    path = tmp_path / "a.json"
    path.write_text(json.dumps({"name": "x", "values": [1, 2.5, 3], "nested": {"deep": [{"k": None}, True]}}))
    r = extract_jsonxml(str(path))
    assert r["format"] == "json" and r["top_level_type"] == "object"
    assert r["max_depth"] == 4
    assert set(r["keys"]) == {"name", "values", "nested", "deep", "k"}
    assert r["counts"]["numeric_arrays"] == 1 and r["counts"]["numbers"] == 3
    assert r["element_count"] == 11


def test_json_gz_and_jsonl(tmp_path):
    gz = tmp_path / "a.json.gz"
    gz.write_bytes(gzip.compress(json.dumps([{"a": 1}, {"a": 2, "b": 3}]).encode()))
    r = extract_jsonxml(str(gz))
    assert (r["format"], r["top_level_type"], r["keys"]) == ("json", "array", ["a", "b"])
    lines = tmp_path / "a.jsonl"
    lines.write_text('{"id": 1}\n{"id": 2, "tag": "x"}\n\n{"id": 3}\n')
    r = extract_jsonxml(str(lines))
    assert (r["format"], r["records"], r["keys"]) == ("jsonl", 3, ["id", "tag"])


def test_xml_structure(tmp_path):
    path = tmp_path / "a.xml"
    path.write_text('<?xml version="1.0"?><root xmlns:d="urn:d"><d:item id="1">a</d:item>'
                    '<item id="2"><sub/></item></root>')
    r = extract_jsonxml(str(path))
    assert (r["format"], r["root"], r["max_depth"], r["element_count"]) == ("xml", "root", 3, 4)
    assert r["namespaces"] == ["urn:d"] and r["keys"][0] == "item" and r["attributes"] == ["id"]


@pytest.mark.parametrize("doc,error", [
    ('<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]><r>&b;</r>',
     "EntitiesForbidden"),
    ('<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>', "EntitiesForbidden"),
    ("<root><unclosed></root>", "SAXParseException"),
])
def test_hostile_or_broken_xml_is_refused(tmp_path, doc, error):
    path = tmp_path / "evil.xml"
    path.write_text(doc)
    f, out = outcome(path)
    assert f["status"] == "error" and out["errors"][0]["type"] == error
    assert "passwd" not in json.dumps(out["metadata"])


# ---------------------------------------------------------------- numpy

def test_npy_and_npz_headers(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros((3, 4), dtype="<f4", order="F"))
    r = extract_numpy(str(tmp_path / "a.npy"))
    assert (r["shape"], r["dtype"], r["fortran_order"], r["nbytes"]) == ([3, 4], "float32", True, 48)
    np.savez_compressed(tmp_path / "b.npz", x=np.arange(5), y=np.ones((2, 2), dtype="u1"))
    r = extract_numpy(str(tmp_path / "b.npz"))
    arrays = {a["name"]: a for a in r["arrays"]}
    assert arrays["x"]["shape"] == [5] and arrays["x"]["dtype"] == "int64" and arrays["x"]["compressed"]
    assert arrays["y"]["shape"] == [2, 2] and arrays["y"]["dtype"] == "uint8"


def test_object_npy_is_described_not_unpickled(tmp_path):
    np.save(tmp_path / "o.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    r = extract_numpy(str(tmp_path / "o.npy"))
    assert r["has_objects"] is True and r["dtype"] == "object" and r["shape"] == [2]


# ---------------------------------------------------------------- fits

def test_fits_hdus(tmp_path):
    r = extract_fits(str(write_fits(tmp_path / "a.fits")))
    assert r["n_hdus"] == 2
    primary, table = r["hdus"]
    assert (primary["type"], primary["shape"], primary["bitpix"]) == ("PRIMARY", [3, 4], 16)
    assert primary["header"]["OBJECT"] == "M31 'core'" and primary["header"]["EXPTIME"] == 150.0
    assert (table["type"], table["name"], table["rows"]) == ("BINTABLE", "EVENTS", 2)
    assert table["columns"] == [{"name": "FLUX", "format": "D", "unit": "Jy"},
                                {"name": "ID", "format": "J", "unit": None}]
    gz = tmp_path / "a.fits.gz"
    gz.write_bytes(gzip.compress((tmp_path / "a.fits").read_bytes()))
    f, doc = outcome(gz)
    assert (f["extractor"], f["status"]) == ("fits", "ok") and doc["metadata"]["fits"]["n_hdus"] == 2


# ---------------------------------------------------------------- archives

def test_zip_listing_and_bomb(tmp_path, monkeypatch):
    path = tmp_path / "a.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("data/x.csv", "a,b\n1,2\n")
        zf.writestr("readme.txt", "hello" * 100)
        zf.writestr("../escape.txt", "x")
    r = extract_archives(str(path))
    assert r["n_members"] == 3 and r["total_uncompressed"] == 8 + 500 + 1
    assert {m["name"]: m["size"] for m in r["members"]}["readme.txt"] == 500
    assert r["unsafe_paths"] == 1 and r["bomb"]["suspected"] is False
    monkeypatch.setattr(archives, "BOMB_MIN_BYTES", 10 << 20)  # the real floor is 100 MB: keep the test small
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        with zf.open("zeros.bin", "w") as member:
            chunk = b"\0" * (1 << 20)
            for _ in range(20):  # 20 MB of zeros -> ~20 KB
                member.write(chunk)
    r = extract_archives(str(bomb))
    assert r["bomb"]["suspected"] is True and r["total_uncompressed"] == 20 << 20
    assert r["bomb"]["ratio"] > 900
    assert not (tmp_path / "zeros.bin").exists()  # listed, never extracted


@pytest.mark.parametrize("mode,name", [("w", "a.tar"), ("w:gz", "a.tar.gz"), ("w:bz2", "a.tar.bz2"),
                                       ("w:xz", "a.tar.xz")])
def test_tar_listing(tmp_path, mode, name):
    path = tmp_path / name
    with tarfile.open(path, mode) as tf:
        for member, payload in (("d/one.txt", b"1" * 10), ("d/two.bin", b"2" * 300)):
            info = tarfile.TarInfo(member)
            info.size = len(payload)
            tf.addfile(info, io.BytesIO(payload))
    f, doc = outcome(path)
    r = doc["metadata"]["archives"]
    assert (f["extractor"], f["status"]) == ("archives", "ok")
    assert r["n_members"] == 2 and r["total_uncompressed"] == 310 and r["complete"] is True
    assert [m["name"] for m in r["members"]] == ["d/one.txt", "d/two.bin"]


def test_gzip_single_file(tmp_path):
    path = tmp_path / "log.txt.gz"
    with gzip.GzipFile(filename="log.txt", fileobj=open(path, "wb"), mode="wb") as gz:  # noqa: SIM115
        gz.write(b"line one\nline two\n" * 50)
    r = extract_archives(str(path))
    assert (r["format"], r["total_uncompressed"], r["original_name"]) == ("gzip", 900, "log.txt")
    assert r["inner_mime"] == "text/plain"


# ---------------------------------------------------------------- malformed variants -> error records

def _truncate(path: pathlib.Path, keep: float = 0.5) -> pathlib.Path:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


MALFORMED = {
    "h5_truncated": lambda d: _truncate(write_h5(d / "t.h5"), 0.3),
    "h5_empty": lambda d: _empty(d / "e.h5"),
    "h5_garbage": lambda d: _garbage(d / "g.h5"),
    "nc_truncated": lambda d: _truncate(write_nc(d / "t.nc"), 0.3),
    "nc_garbage": lambda d: _garbage(d / "g.nc"),
    "png_truncated": lambda d: _truncate(write_png(d / "t.png"), 0.6),
    "png_empty": lambda d: _empty(d / "e.png"),
    "jpg_garbage": lambda d: _garbage(d / "g.jpg"),
    "json_truncated": lambda d: _truncate(_json(d / "t.json"), 0.5),
    "json_empty": lambda d: _empty(d / "e.json"),
    "npy_truncated": lambda d: _truncate(_npy(d / "t.npy"), 0.5),
    "npy_garbage": lambda d: _garbage(d / "g.npy"),
    "npz_garbage": lambda d: _garbage(d / "g.npz"),
    "fits_cut_header": lambda d: _truncate(write_fits(d / "t.fits"), 0.2),  # inside the primary header
    "fits_garbage": lambda d: _garbage(d / "g.fits"),
    "zip_truncated": lambda d: _truncate(_zip(d / "t.zip"), 0.5),
    "zip_empty": lambda d: _empty(d / "e.zip"),
    "tgz_garbage": lambda d: _garbage(d / "g.tar.gz"),
    "gz_truncated": lambda d: _truncate(_gz(d / "t.gz"), 0.5),
}


def _empty(p: pathlib.Path) -> pathlib.Path:
    p.write_bytes(b"")
    return p


def _garbage(p: pathlib.Path) -> pathlib.Path:
    p.write_bytes(bytes((i * 131 + 7) % 256 for i in range(4096)))
    return p


def _json(p: pathlib.Path) -> pathlib.Path:
    p.write_text(json.dumps({"a": [1, 2, 3], "b": {"c": "d"}}))
    return p


def _npy(p: pathlib.Path) -> pathlib.Path:
    np.save(p, np.arange(1000, dtype="f8"))
    return p


def _zip(p: pathlib.Path) -> pathlib.Path:
    with zipfile.ZipFile(p, "w") as zf:
        zf.writestr("a.txt", "x" * 5000)
    return p


def _gz(p: pathlib.Path) -> pathlib.Path:
    p.write_bytes(gzip.compress(bytes(range(256)) * 400))
    return p


def test_truncated_fits_keeps_its_cards(tmp_path):
    """Data cut short: the headers are whole, so the record is ok and says truncated; a cut header is an
    error record that still carries the cards read before the cut."""
    f, doc = outcome(write_fits(tmp_path / "t.fits", truncate=2870))  # cuts the table's data
    meta = doc["metadata"]["fits"]
    assert f["status"] == "ok" and meta["truncated"] and meta["hdus"][-1]["truncated"]
    assert meta["hdus"][0]["header"]["SIMPLE"] is True
    f, doc = outcome(_truncate(write_fits(tmp_path / "c.fits"), 0.2))
    assert f["status"] == "error" and doc["errors"][0]["type"] == "PartialMetadata"
    assert doc["metadata"]["fits"]["partial"] and doc["metadata"]["fits"]["hdus"][0]["header"]["SIMPLE"] is True


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_files_become_error_records(tmp_path, case):
    path = MALFORMED[case](tmp_path)
    good = write_png(tmp_path / "good.png")
    res = extract_group({"group_id": "g", "files": group_of(path)["files"] + group_of(good)["files"]})
    bad_out, good_out = res["files"]
    assert bad_out["status"] == "error", (case, bad_out)
    err = res["doc"]["errors"][0]
    assert err["path"] == str(path) and err["type"] and err["message"] is not None
    assert good_out["status"] == "ok"  # one bad file never costs the rest of its group
    json.dumps(res["doc"], allow_nan=False)
