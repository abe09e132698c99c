"""Deterministic test trees for the benchmarks: N files in nested directories.

Two kinds:

* ``crawl`` (default): many small files with a realistic spread of names, extensions,
  directory sizes and depths; contents are a few bytes, because a crawl reads only
  directory entries and inode data, never contents. 1M files fit in well under 1 GB.
* ``mixed``: a corpus for extraction: real CSV/TSV tables, free text, JSON, binary
  blobs, files with no extension, sidecar pairs (``scan.hdr`` + ``scan.img``) and some
  CPU-heavier tables. Built-in extractors and later ones see files they understand.

The same (N, kind, seed) gives byte-identical trees. A stamp file beside the tree
(``ROOT.stamp.json``) records what was built, so a second run reuses it instead of
paying tens of seconds to write 1M files again.

    python bench/make_tree.py /tmp/xtract-bench/tree --files 100000
    python bench/make_tree.py /tmp/xtract-bench/tree1m --files 1000000
    python bench/make_tree.py /tmp/xtract-bench/mixed --files 10000 --kind mixed
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import time
from typing import Any

#: (extension, weight) for the crawl kind: roughly a science share drive.
CRAWL_EXTENSIONS: tuple[tuple[str, int], ...] = (
    ("csv", 18), ("txt", 12), ("json", 8), ("h5", 6), ("nc", 4), ("png", 8), ("jpg", 5), ("tif", 3),
    ("dat", 6), ("log", 5), ("py", 4), ("md", 2), ("tar.gz", 2), ("fits", 2), ("npy", 3), ("", 6),
    ("xml", 2), ("hdr", 1), ("img", 1), ("parquet", 2),
)

#: (kind, weight) for the mixed corpus.
MIXED_KINDS: tuple[tuple[str, int], ...] = (
    ("csv", 30), ("tsv", 8), ("csv_heavy", 2), ("txt", 14), ("json", 10), ("bin", 10), ("noext_table", 6),
    ("noext_text", 4), ("pair", 6), ("log", 6),
)

#: Bumped when a kind's content changes, so stale trees are rebuilt (and only those).
STAMP_VERSION = {"crawl": 2, "mixed": 3}


def _pick(rng: random.Random, table: tuple[tuple[str, int], ...]) -> str:
    total = sum(w for _, w in table)
    x = rng.randrange(total)
    for value, w in table:
        x -= w
        if x < 0:
            return value
    return table[-1][0]


def layout(n_files: int, rng: random.Random) -> list[tuple[str, int]]:
    """(relative directory, files in it): nested 3-4 deep, directory sizes from 1 to ~400."""
    dirs: list[tuple[str, int]] = []
    left = n_files
    i = 0
    while left > 0:
        top, mid, leaf = i // 400, (i // 20) % 20, i % 20
        depth = 2 + (i % 3 == 0) + (i % 7 == 0)
        parts = [f"project{top:03d}", f"run{mid:02d}", f"set{leaf:02d}", "raw", "deep"][:depth + 1]
        size = min(left, max(1, int(rng.lognormvariate(3.8, 1.0))), 400)
        dirs.append(("/".join(parts), size))
        left -= size
        i += 1
    return dirs


def _table(rng: random.Random, rows: int, sep: str, cols: int) -> bytes:
    header = sep.join(["time", "temp", "pressure", "site", "flag", "x", "y", "z"][:cols])
    sites = ("alpha", "beta", "gamma", "delta")
    lines = [header]
    t = rng.random() * 1000
    for r in range(rows):
        t += 0.5
        vals = [f"{t:.2f}", f"{rng.gauss(20, 5):.3f}", f"{rng.gauss(1013, 8):.2f}", sites[r % 4], str(r % 2),
                f"{rng.random():.5f}", f"{rng.random():.5f}", f"{rng.random():.5f}"]
        lines.append(sep.join(vals[:cols]))
    return ("\n".join(lines) + "\n").encode()


_WORDS = ("sample", "beamline", "detector", "calibration", "run", "note", "the", "was", "measured", "after",
          "temperature", "stable", "shutter", "opened", "energy", "scan", "aborted", "resumed", "and", "with")


def _text(rng: random.Random, words: int) -> bytes:
    out = []
    for i in range(words):
        out.append(_WORDS[rng.randrange(len(_WORDS))])
        if i % 12 == 11:
            out.append(".\n")
    return (" ".join(out) + "\n").encode()


def mixed_content(kind: str, rng: random.Random) -> list[tuple[str, bytes]]:
    """(suffix, bytes) for one logical item of the mixed corpus (a pair yields two files)."""
    if kind == "csv":
        return [(".csv", _table(rng, rng.randrange(20, 400), ",", rng.randrange(3, 9)))]
    if kind == "tsv":
        return [(".tsv", _table(rng, rng.randrange(20, 300), "\t", rng.randrange(3, 9)))]
    if kind == "csv_heavy":
        return [(".csv", _table(rng, rng.randrange(2000, 4000), ",", 8))]
    if kind == "txt":
        return [(".txt", _text(rng, rng.randrange(30, 600)))]
    if kind == "log":
        return [(".log", _text(rng, rng.randrange(30, 300)))]
    if kind == "json":
        doc = {"id": rng.randrange(10**6), "tags": [_WORDS[rng.randrange(20)] for _ in range(5)],
               "values": [round(rng.random(), 4) for _ in range(rng.randrange(5, 80))]}
        return [(".json", json.dumps(doc).encode())]
    if kind == "bin":
        return [(".bin", rng.randbytes(rng.randrange(256, 32768)))]
    if kind == "noext_table":
        return [("", _table(rng, rng.randrange(20, 200), ",", 4))]
    if kind == "noext_text":
        return [("", _text(rng, rng.randrange(20, 200)))]
    if kind == "pair":
        return [(".hdr", b"ENVI\nsamples = 64\nlines = 64\nbands = 1\n"), (".img", rng.randbytes(4096))]
    raise ValueError(kind)


def _write(path: str, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        if data:
            os.write(fd, data)
    finally:
        os.close(fd)


def build(root: str, n_files: int, *, kind: str = "crawl", seed: int = 0) -> dict[str, Any]:
    """Write the tree (replacing any older one at ``root``); returns what was built."""
    rng = random.Random(f"{seed}:{kind}:{n_files}")
    if os.path.exists(root):
        shutil.rmtree(root)
    started = time.perf_counter()
    files = total_bytes = 0
    mtime_base = 1_700_000_000
    for rel, size in layout(n_files, rng):
        d = os.path.join(root, rel)
        os.makedirs(d, exist_ok=True)
        made = 0
        j = 0
        while made < size and files < n_files:
            if kind == "crawl":
                ext = _pick(rng, CRAWL_EXTENSIONS)
                name = f"f{j:04d}_{rng.randrange(16**6):06x}" + (f".{ext}" if ext else "")
                items = [(name, b"x" * rng.randrange(0, 64))]
            else:
                stem = f"item{j:04d}"
                items = [(stem + suffix, data) for suffix, data in mixed_content(_pick(rng, MIXED_KINDS), rng)]
            for name, data in items[: n_files - files]:
                path = os.path.join(d, name)
                _write(path, data)
                os.utime(path, (mtime_base + files, mtime_base + files))
                files += 1
                made += 1
                total_bytes += len(data)
            j += 1
    info = {"root": os.path.abspath(root), "files": files, "bytes": total_bytes, "kind": kind, "seed": seed,
            "version": STAMP_VERSION[kind], "seconds": round(time.perf_counter() - started, 2)}
    with open(_stamp(root), "w") as fh:
        json.dump(info, fh)
    return info


def _stamp(root: str) -> str:
    return os.path.abspath(root).rstrip("/") + ".stamp.json"


def ensure(root: str, n_files: int, *, kind: str = "crawl", seed: int = 0) -> dict[str, Any]:
    """The tree at ``root`` as asked for: reused when its stamp matches, else (re)built."""
    try:
        with open(_stamp(root)) as fh:
            info = json.load(fh)
        if (info.get("files"), info.get("kind"), info.get("seed"), info.get("version")) == (
                n_files, kind, seed, STAMP_VERSION[kind]) and os.path.isdir(root):
            return {**info, "reused": True}
    except (OSError, ValueError):
        pass
    return {**build(root, n_files, kind=kind, seed=seed), "reused": False}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("root", help="directory to (re)create")
    ap.add_argument("--files", type=int, default=100_000, help="number of files (default 100000; try 1000000)")
    ap.add_argument("--kind", choices=("crawl", "mixed"), default="crawl")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--force", action="store_true", help="rebuild even if the stamp matches")
    args = ap.parse_args(argv)
    if args.force:
        info = {**build(args.root, args.files, kind=args.kind, seed=args.seed), "reused": False}
    else:
        info = ensure(args.root, args.files, kind=args.kind, seed=args.seed)
    print(json.dumps(info))
    return 0


if __name__ == "__main__":
    sys.exit(main())
