"""The fast paths give exactly what the simple ones give.

The crawl derives extensions with RE2 over whole batches, and the built-in groupers run
columnar; both must agree with the per-file reference code (``split_extension``, the
row-by-row grouper) byte for byte, since group ids and fingerprints decide resume.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from extractors.detect import split_extension
from extractors.registry import default_registry
from tasks.crawl import crawl_to_spool
from tasks.group import _VECTOR_KEYS, GROUPERS, _group_columnar, _group_rows
from tasks.habitats.local_crawl import LocalCrawler
from tasks.store.arrow_columns import column, record_batch, strings
from tasks.store.records import iter_spool, path_extensions, permission_strings

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRICKY = ["a/b/data.tar.gz", "x.CSV", ".bashrc", "noext", "v1.2.final.gz", "/d/.tar.gz", "/d/tar.gz", "/d.x/tar",
          "/d/a..gz", "/d/..foo", "/d/foo.", "/d/a.toolong.gz", "/d/a.b.ZST", "/d/é.Ünï", "/d/.x.y", "/d/a.b/c",
          "/d/a.tar.bz2", "/d/scan.hdr"]


def test_path_extensions_match_split_extension():
    rng = random.Random(7)
    alphabet = "ab.Z/é_-gxzst2"
    names = TRICKY + ["/" + "".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 14))) for _ in range(5000)]
    got = path_extensions(pa.array(names)).to_pylist()
    assert got == [split_extension(n) for n in names]


def test_permission_strings():
    modes = [0o100644, 0o100755, 0o100644, 0o100600]
    assert permission_strings(pa.array(modes, pa.int64())).to_pylist() == [
        "-rw-r--r--", "-rwxr-xr-x", "-rw-r--r--", "-rw-------"]


def test_buffer_built_arrays_equal_pa_array():
    rng = random.Random(3)
    texts = ["", "a", "é€😀", "x" * 300] + ["".join(rng.choice("ab/é.\0 ") for _ in range(rng.randrange(0, 9)))
                                         for _ in range(2000)]
    with_nulls = [None if rng.random() < 0.2 else t for t in texts] + [None] * 9
    for values in (texts, with_nulls, [], [None], [None, "a"]):
        got = strings(values)
        got.validate(full=True)
        assert got.equals(pa.array(values, pa.string())), values[:5]
    for values, type_ in (([0, -1, 2**62, 7], pa.int64()), ([1.5, -0.0, 1e300, float("inf")], pa.float64()),
                          ([0, 3, 2**31 - 1], pa.int32()), ([1, None], pa.int64()), ([True, False], pa.bool_())):
        assert column(values, type_).equals(pa.array(values, type_))
    schema = pa.schema([("p", pa.string()), ("n", pa.int64())])
    assert record_batch({"p": ["a", None], "n": [1, 2]}, schema).equals(
        pa.record_batch({"p": ["a", None], "n": [1, 2]}, schema=schema))
    with pytest.raises(UnicodeEncodeError):  # not UTF-8: the crawl stores such names as text (extractors/fspath.py)
        strings(["ok", "bad\udcff"])


def test_crawl_and_group_leave_pandas_unimported(tmp_path):
    """pyarrow imports pandas on its first list conversion (0.3-0.5 s): the flow process must not pay it
    before extraction starts (tasks/store/arrow_columns.py)."""
    _tree(tmp_path / "t")
    code = f"""
import sys
from tasks.crawl import crawl_to_spool
from tasks.habitats.local_crawl import LocalCrawler
from tasks.group import GROUPERS, group_spool, iter_groups
crawl_to_spool(LocalCrawler(), [{str(tmp_path / "t")!r}], {str(tmp_path / "c.parquet")!r})
for name in sorted(GROUPERS):
    group_spool({str(tmp_path / "c.parquet")!r}, {str(tmp_path / "g.parquet")!r}, name)
    assert sum(1 for _ in iter_groups({str(tmp_path / "g.parquet")!r})) > 0
print(sorted(m for m in sys.modules if m == "pandas" or m.startswith("pandas.")))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.strip() == "[]", out.stderr


def _tree(root):
    """Several directories, sidecar pairs, dot files, compound extensions, a subdirectory between files."""
    for d in ("a", "a/b", "a/b/c", "z"):
        os.makedirs(root / d, exist_ok=True)
    names = {"a": ["scan.hdr", "scan.img", "other.csv", ".hidden", ".x.y", "noext", "t.tar.gz"],
             "a/b": ["T.CSV", "x.dat", "data", "scan.hdr"], "a/b/c": ["one.json"],
             "z": [f"f{i}.txt" for i in range(30)]}
    for d, files in names.items():
        for i, n in enumerate(files):
            (root / d / n).write_bytes(b"a,b\n1,2\n" * (i + 1))
    return sum(len(f) for f in names.values())


def test_crawl_spool_has_every_file_once_with_its_facts(tmp_path):
    n = _tree(tmp_path / "t")
    spool = str(tmp_path / "c.parquet")
    status = crawl_to_spool(LocalCrawler("ep"), [str(tmp_path / "t")], spool, batch_size=3)
    rows = [r for cols in iter_spool(spool) for r in zip(*cols.values(), strict=True)]
    assert status.files == n == len(rows) == len({r[0] for r in rows})
    for path, size, mtime, ext, ep, perm, inode in rows:
        st = os.stat(path)
        assert (size, mtime, ext, ep, inode) == (st.st_size, st.st_mtime, split_extension(path), "ep", st.st_ino)
        assert perm.startswith("-r")
    dirs = [os.path.dirname(r[0]) for r in rows]  # a directory's files stay together
    assert dirs == sorted(dirs, key=dirs.index)


@pytest.mark.parametrize("grouper", sorted(GROUPERS))
def test_columnar_grouping_equals_row_grouping(tmp_path, grouper):
    _tree(tmp_path / "t")
    spool = str(tmp_path / "c.parquet")
    crawl_to_spool(LocalCrawler(), [str(tmp_path / "t")], spool, batch_size=2)
    fn = GROUPERS[grouper]
    registry = default_registry()
    fast = _group_columnar(spool, str(tmp_path / "fast.parquet"), _VECTOR_KEYS[fn], registry)
    slow = _group_rows(spool, str(tmp_path / "slow.parquet"), fn, registry)
    assert fast == slow
    assert pq.read_table(tmp_path / "fast.parquet").equals(pq.read_table(tmp_path / "slow.parquet"))


def test_sniffed_widths_match_the_csv_reader():
    """Counting delimiters (the fast path) gives the CSV reader's field count on every line."""
    from extractors.tabular import DELIMITERS, _fields, _widths

    rng = random.Random(11)
    alphabet = 'ab1 ,;\t|"x.\\'
    lines = [ln for ln in ("".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 30)))
                           for _ in range(5000)) if ln.strip()]
    lines += ['a,"b,c",d', '"x"', 'a;"b;""c";d', "1 2  3", "\x00a,b"]
    quotes = [ln.count('"') for ln in lines]
    for delim in DELIMITERS:
        reference = [None if q % 2 else len(_fields(ln, delim)) for ln, q in zip(lines, quotes, strict=True)]
        assert _widths(lines, quotes, delim) == reference, delim


def _reference_flatten(value, keys, parts, key="", budget=32_000):
    """The search text's plain recursive definition, one call per value."""
    if budget <= 0:
        return budget
    if isinstance(value, dict):
        for k, v in value.items():
            keys.setdefault(str(k), None)
            budget = _reference_flatten(v, keys, parts, str(k), budget)
            if budget <= 0:
                break
    elif isinstance(value, list):
        items = value[:100]
        if items and all(not isinstance(v, dict | list) for v in items):
            piece = " ".join([key, *((str(v).lower() if isinstance(v, bool) else str(v))[:500]
                                     for v in items if v is not None)]).strip()
            parts.append(piece)
            budget -= len(piece) + 1
        else:
            for v in items:
                budget = _reference_flatten(v, keys, parts, key, budget)
                if budget <= 0:
                    break
    elif value is not None:
        text = (str(value).lower() if isinstance(value, bool) else str(value))[:500]
        piece = f"{key} {text}" if key else text
        parts.append(piece)
        budget -= len(piece) + 1
    return budget


def test_search_text_fast_path_matches_the_plain_recursion():
    from tasks.store.search_text import flatten

    rng = random.Random(5)

    def value(depth):
        kind = rng.randrange(9 if depth < 4 else 6)
        if kind == 0:
            return None
        if kind == 1:
            return rng.choice([True, False])
        if kind == 2:
            return rng.randrange(-10**6, 10**6)
        if kind == 3:
            return rng.random() * 1e3
        if kind in (4, 5):
            return "".join(rng.choice("ab é_") for _ in range(rng.randrange(0, 700)))
        if kind == 6:  # long lists only one level above the leaves, so documents stay small
            return [value(depth + 1 if depth < 3 else 5) for _ in range(rng.randrange(0, 120 if depth >= 3 else 6))]
        keys = ["", "name", "k", "mean", "x"]
        return {rng.choice(keys) + str(i): value(depth + 1) for i in range(rng.randrange(0, 8))}

    for budget in (32_000, 300):
        for _ in range(300):
            doc = {"metadata": value(0), "": value(1)}
            got_keys: dict[str, None] = {}
            got: list[str] = []
            want_keys: dict[str, None] = {}
            want: list[str] = []
            assert flatten(doc, got_keys, got, "", budget) == _reference_flatten(doc, want_keys, want, "", budget)
            assert (got, got_keys) == (want, want_keys)


def _imported(module: str) -> bool:
    import sys

    return module in sys.modules


def test_local_workers_start_with_the_extractor_stack_imported():
    """Workers fork from a server that imported pandas and the extractors once (not once per worker)."""
    from tasks.pools.base import PoolSpec
    from tasks.pools.process import ProcessPool

    pool = ProcessPool(PoolSpec(workers=1))
    try:
        assert pool.submit(_imported, "pandas").result(timeout=120)
        assert pool.submit(_imported, "extractors.builtins").result(timeout=120)
    finally:
        pool.close()


def _process_facts() -> tuple[int, str | None, int]:
    import resource

    from extractors.batch import current_umask

    return current_umask(), os.environ.get("XTRACT_TEST_MARK"), resource.getrlimit(resource.RLIMIT_FSIZE)[0]


def test_forked_workers_take_this_process_umask_environment_and_file_limit(monkeypatch):
    """What a spawned worker would inherit now, not what the fork server had when it started."""
    import resource

    from tasks.pools.base import PoolSpec
    from tasks.pools.process import ProcessPool, start_worker_server

    start_worker_server()  # already running in most sessions: started before the changes below
    monkeypatch.setenv("XTRACT_TEST_MARK", "set-after-the-server-started")
    old_umask = os.umask(0o027)
    old_fsize = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (50_000_000, old_fsize[1]))
    try:
        pool = ProcessPool(PoolSpec(workers=1))
    finally:
        os.umask(old_umask)
        resource.setrlimit(resource.RLIMIT_FSIZE, old_fsize)
    try:
        assert pool.submit(_process_facts).result(timeout=120) == (0o027, "set-after-the-server-started", 50_000_000)
    finally:
        pool.close()
