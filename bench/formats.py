"""Deterministic sample files per extractor, for bench/extract_formats.py.

Each generator writes ``n`` files of a realistic size for its format into a directory
and returns their paths. Formats whose library is missing are left out by the caller
(``available()``), never faked.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import random
import tarfile
import zipfile
from collections.abc import Callable

from bench.make_tree import _table, _text

Generator = Callable[[str, int, random.Random], list[str]]


def _paths(d: str, n: int, ext: str) -> list[str]:
    os.makedirs(d, exist_ok=True)
    return [os.path.join(d, f"s{i:04d}.{ext}") for i in range(n)]


def _write(path: str, data: bytes) -> str:
    with open(path, "wb") as fh:
        fh.write(data)
    return path


def gen_csv(d: str, n: int, rng: random.Random) -> list[str]:
    return [_write(p, _table(rng, rng.randrange(200, 600), ",", 8)) for p in _paths(d, n, "csv")]


def gen_txt(d: str, n: int, rng: random.Random) -> list[str]:
    return [_write(p, _text(rng, rng.randrange(800, 2000))) for p in _paths(d, n, "txt")]


def gen_json(d: str, n: int, rng: random.Random) -> list[str]:
    out = []
    for p in _paths(d, n, "json"):
        doc = {"experiment": {"id": rng.randrange(10**6), "instrument": "beamline-7",
                              "samples": [{"name": f"s{k}", "temp": round(rng.gauss(20, 3), 3),
                                           "tags": ["a", "b", "c"][: rng.randrange(1, 4)]}
                                          for k in range(rng.randrange(20, 80))]}}
        out.append(_write(p, json.dumps(doc, indent=1).encode()))
    return out


def gen_png(d: str, n: int, rng: random.Random) -> list[str]:
    from PIL import Image

    out = []
    for p in _paths(d, n, "png"):
        Image.frombytes("RGB", (256, 256), rng.randbytes(256 * 256 * 3)).save(p)
        out.append(p)
    return out


def gen_h5(d: str, n: int, rng: random.Random) -> list[str]:
    import h5py
    import numpy as np

    out = []
    for p in _paths(d, n, "h5"):
        with h5py.File(p, "w") as f:
            f.attrs["instrument"] = "detector-3"
            for g in range(4):
                grp = f.create_group(f"scan{g}")
                grp.attrs["energy_kev"] = 12.4 + g
                for k in range(3):
                    grp.create_dataset(f"frame{k}", data=np.arange(64 * 64, dtype="f4").reshape(64, 64) * g)
        out.append(p)
    return out


def gen_nc(d: str, n: int, rng: random.Random) -> list[str]:
    import netCDF4
    import numpy as np

    out = []
    for p in _paths(d, n, "nc"):
        with netCDF4.Dataset(p, "w") as ds:
            ds.title = "synthetic climate slice"
            ds.createDimension("time", 24)
            ds.createDimension("lat", 32)
            ds.createDimension("lon", 64)
            v = ds.createVariable("temp", "f4", ("time", "lat", "lon"))
            v.units = "K"
            v[:] = np.full((24, 32, 64), 280.0, dtype="f4")
        out.append(p)
    return out


def gen_npy(d: str, n: int, rng: random.Random) -> list[str]:
    import numpy as np

    out = []
    for p in _paths(d, n, "npy"):
        np.save(p, np.arange(128 * 1024, dtype="f8"))
        out.append(p)
    return out


def gen_py(d: str, n: int, rng: random.Random) -> list[str]:
    out = []
    for p in _paths(d, n, "py"):
        body = '    """Doc."""\n    import math\n    return math.sqrt(x) + y'
        funcs = "\n\n".join(f"def f{k}(x, y={k}):\n{body}" for k in range(rng.randrange(10, 60)))
        out.append(_write(p, f'"""Module."""\nimport os\nimport sys\n\n{funcs}\n'.encode()))
    return out


def gen_c(d: str, n: int, rng: random.Random) -> list[str]:
    out = []
    for p in _paths(d, n, "c"):
        funcs = "\n".join(f"static int f{k}(int x) {{ return x * {k}; }}" for k in range(rng.randrange(10, 80)))
        out.append(_write(p, f"#include <stdio.h>\n#include <math.h>\n{funcs}\nint main(void) {{ return 0; }}\n"
                          .encode()))
    return out


def gen_zip(d: str, n: int, rng: random.Random) -> list[str]:
    out = []
    for p in _paths(d, n, "zip"):
        with zipfile.ZipFile(p, "w", zipfile.ZIP_DEFLATED) as z:
            for k in range(20):
                z.writestr(f"data/part{k}.txt", _text(rng, 200))
        out.append(p)
    return out


def gen_targz(d: str, n: int, rng: random.Random) -> list[str]:
    out = []
    for p in _paths(d, n, "tar.gz"):
        with tarfile.open(p, "w:gz") as t:
            for k in range(20):
                data = _text(rng, 200)
                info = tarfile.TarInfo(f"data/part{k}.txt")
                info.size = len(data)
                t.addfile(info, io.BytesIO(data))
        out.append(p)
    return out


def _card(text: str) -> bytes:
    return text.ljust(80).encode("ascii")


def gen_fits(d: str, n: int, rng: random.Random) -> list[str]:
    """A primary HDU with a 256x256 int16 image, written by hand (no astropy needed)."""
    out = []
    for p in _paths(d, n, "fits"):
        cards = [_card("SIMPLE  =                    T"), _card("BITPIX  =                   16"),
                 _card("NAXIS   =                    2"), _card("NAXIS1  =                  256"),
                 _card("NAXIS2  =                  256"), _card("OBJECT  = 'M31     '"),
                 _card("EXPTIME =                 30.0"), _card("END")]
        header = b"".join(cards)
        header += b" " * (-len(header) % 2880)
        data = rng.randbytes(256 * 256 * 2)
        data += b"\0" * (-len(data) % 2880)
        out.append(_write(p, header + data))
    return out


def gen_bin(d: str, n: int, rng: random.Random) -> list[str]:
    return [_write(p, rng.randbytes(64 * 1024)) for p in _paths(d, n, "bin")]


#: sample name -> (extractor expected to handle it, generator, python module it needs or None)
SAMPLES: dict[str, tuple[str, Generator, str | None]] = {
    "csv": ("tabular", gen_csv, "pandas"),
    "txt": ("keyword", gen_txt, None),
    "json": ("jsonxml", gen_json, None),
    "png": ("images", gen_png, "PIL"),
    "h5": ("hdf5", gen_h5, "h5py"),
    "nc": ("netcdf", gen_nc, "netCDF4"),
    "npy": ("numpy", gen_npy, "numpy"),
    "py": ("python", gen_py, None),
    "c": ("c_code", gen_c, None),
    "zip": ("archives", gen_zip, None),
    "tar.gz": ("archives", gen_targz, None),
    "fits": ("fits", gen_fits, None),
    "bin": ("physical", gen_bin, None),
}


def available() -> dict[str, tuple[str, Generator, str | None]]:
    return {k: v for k, v in SAMPLES.items() if v[2] is None or importlib.util.find_spec(v[2]) is not None}


def write_big_csv(path: str, megabytes: float, seed: int = 0) -> int:
    """A CSV of about ``megabytes`` MB: 8 mixed columns; a 4 MB block of rows written repeatedly
    (parsing cost per byte is what matters; distinct-value counts are capped by the extractor anyway)."""
    rng = random.Random(seed)
    block = _table(rng, 50_000, ",", 8)
    header, _, body = block.partition(b"\n")
    target = int(megabytes * 2**20)
    written = 0
    with open(path, "wb") as fh:
        fh.write(header + b"\n")
        written += len(header) + 1
        while written < target:
            chunk = body[: target - written] if target - written < len(body) else body
            if chunk is not body:
                chunk = chunk[: chunk.rfind(b"\n") + 1] or body[: body.find(b"\n") + 1]
            fh.write(chunk)
            written += len(chunk)
    return written
