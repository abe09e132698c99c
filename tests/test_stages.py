"""Stage functions on real files, without a flow around them."""

from __future__ import annotations

import os

from extractors.detect import mime_from_head, split_extension
from tasks.group import group_related
from tasks.habitats.local_crawl import LocalCrawler


def test_split_extension():
    assert split_extension("a/b/data.tar.gz") == "tar.gz"
    assert split_extension("x.CSV") == "csv"
    assert split_extension(".bashrc") == ""
    assert split_extension("noext") == ""
    assert split_extension("v1.2.final.gz") == "final.gz"


def test_mime_from_head():
    assert mime_from_head(b"\x89HDF\r\n\x1a\nrest") == "application/x-hdf5"
    assert mime_from_head(b"a,b,c\n1,2,3\n4,5,6\n") == "text/csv"
    assert mime_from_head(b"") == "application/x-empty"
    assert mime_from_head(b"\x00\x01\x02\x03") == "application/octet-stream"


def test_local_crawler_streams_skips_symlinks_and_records_unreadable(tmp_path):
    for d in range(3):
        for f in range(4):
            p = tmp_path / f"d{d}" / f"f{f}.txt"
            p.parent.mkdir(exist_ok=True)
            p.write_text("x" * f)
    os.symlink(tmp_path / "d0", tmp_path / "d0" / "loop")
    os.symlink(tmp_path / "d1" / "f1.txt", tmp_path / "link.txt")
    locked = tmp_path / "locked"
    locked.mkdir()
    (locked / "secret.txt").write_text("s")
    locked.chmod(0)
    try:
        crawler = LocalCrawler()
        batches = list(crawler.iter_batches([str(tmp_path)], batch_size=5))
    finally:
        locked.chmod(0o755)
    records = [r for b in batches for r in b]
    readable = 12 + (os.geteuid() == 0)  # root reads the locked directory anyway
    assert len(records) == readable and crawler.status.files == readable
    assert crawler.status.bytes == 3 * (0 + 1 + 2 + 3) + (os.geteuid() == 0)
    assert crawler.status.symlinks_skipped == 2
    if os.geteuid() != 0:  # root reads anything
        assert crawler.status.errors[0]["path"] == str(locked)
    # a directory's files are contiguous (the grouper relies on it)
    dirs = [os.path.dirname(r.path) for r in records]
    assert dirs == sorted(dirs, key=dirs.index)


def test_follow_symlinks_is_loop_safe(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f.txt").write_text("x")
    os.symlink(tmp_path / "d", tmp_path / "d" / "loop")
    crawler = LocalCrawler(follow_symlinks=True)
    records = [r for b in crawler.iter_batches([str(tmp_path)]) for r in b]
    assert [os.path.basename(r.path) for r in records] == ["f.txt"]


def test_related_grouper_by_stem():
    rows = [{"path": f"/d/{n}"} for n in ("scan.hdr", "scan.img", "other.csv", "scan.tar.gz")]
    groups = group_related(rows)
    assert sorted(len(g) for g in groups) == [1, 3]


def test_parallel_walk_finds_exactly_what_one_walker_finds(tmp_path):
    """Past HELPER_AFTER_FILES a helper process walks half the pending directories: same files,
    same sizes, each directory's files still contiguous, errors and symlinks still counted."""
    from tasks.habitats.local_crawl import HELPER_AFTER_FILES

    per_dir = 100
    n_dirs = HELPER_AFTER_FILES // per_dir + 20
    for d in range(n_dirs):
        sub = tmp_path / f"top{d % 4}" / f"d{d:03d}"
        sub.mkdir(parents=True)
        for f in range(per_dir):
            (sub / f"f{f}.dat").write_bytes(b"x" * (f % 7))
    os.symlink(tmp_path / "top0", tmp_path / "top1" / "link")
    results = {}
    for parallel in (True, False):
        crawler = LocalCrawler(parallel=parallel)
        cols = list(crawler.iter_columns([str(tmp_path)], batch_size=1000))
        records = [(p, s) for c in cols for p, s in zip(c[0], c[1], strict=True)]
        dirs = [os.path.dirname(p) for p, _ in records]
        assert dirs == sorted(dirs, key=dirs.index), "a directory's files must stay together"
        results[parallel] = (sorted(records), crawler.status.files, crawler.status.dirs,
                             crawler.status.symlinks_skipped, crawler.helper_used)
    assert results[True][4] and not results[False][4]
    assert results[True][:4] == results[False][:4]
    assert results[True][1] == n_dirs * per_dir
