"""The local directory walk, usable in-process and as a helper process of its own.

This module imports only the standard library, so the crawler can run it as
``python -I -S tasks/habitats/local_walk.py`` (tens of milliseconds to start, no Prefect, no
fork of a threaded process) and hand it half of a large tree: on a multi-core
machine two walkers list and stat in parallel, which is how the crawl keeps up
with ``find``. Protocol: stdin carries one marshal'd ``(dirs, follow, batch_size)``;
stdout carries length-prefixed marshal'd messages, ``("batch", paths, sizes,
mtimes, modes, inodes)`` holding whole directories, then ``("end", dirs, symlinks, errors)``.
The inode of each file comes with the stat the walk makes anyway: extraction compares it
with the file it opens, so a file replaced (renamed over) after the crawl is noticed.
"""

from __future__ import annotations

import marshal
import os
import struct
import sys
from typing import Any

#: Directories are opened (then listed and stat'ed relative to the fd); O_DIRECTORY refuses a file.
DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)
_LEN = struct.Struct("<Q")


class WalkCounters:
    """What a walk found besides files: the crawl status is built from it."""

    def __init__(self) -> None:
        self.dirs = 0
        self.symlinks_skipped = 0
        self.errors: list[tuple[str, str]] = []

    def add_error(self, path: str, exc: BaseException) -> None:
        self.errors.append((path, f"{type(exc).__name__}: {getattr(exc, 'strerror', None) or exc}"))

    def merge(self, other: WalkCounters) -> None:
        self.dirs += other.dirs
        self.symlinks_skipped += other.symlinks_skipped
        self.errors.extend(other.errors)


def _entry_is(entry: os.DirEntry[str], kind: str, follow: bool) -> bool:
    """``is_file``/``is_dir`` that say False where following a link fails (loops, unreadable targets)."""
    try:
        return entry.is_file(follow_symlinks=follow) if kind == "file" else entry.is_dir(follow_symlinks=follow)
    except OSError:
        return False


def list_dir(fd: int, current: str, follow: bool, paths: list[str], sizes: list[int], mtimes: list[float],
             modes: list[int], inodes: list[int], counters: WalkCounters) -> list[str]:
    """Append one directory's regular files to the columns; returns its subdirectories.

    Comprehensions rather than a loop with per-entry branches: this is the crawl's
    hot path, and per-entry Python work is what separates it from ``find``.
    """
    prefix = current if current.endswith("/") else current + "/"
    with os.scandir(fd) as it:
        entries = list(it)
    try:
        files = [e for e in entries if e.is_file(follow_symlinks=follow)]
    except OSError:  # a symlink loop (ELOOP) or an unreadable target: sort entries one by one
        files = [e for e in entries if _entry_is(e, "file", follow)]
    try:  # is_file() already resolved symlinks as asked, so stat() may follow
        stats = [e.stat() for e in files]
    except OSError:  # an entry vanished or cannot be stat'ed: keep the others
        stats, kept = [], []
        for e in files:
            try:
                stats.append(e.stat())
                kept.append(e)
            except OSError:
                counters.symlinks_skipped += e.is_symlink()
        files = kept
    paths.extend([prefix + e.name for e in files])
    sizes.extend([s.st_size for s in stats])
    mtimes.extend([s.st_mtime for s in stats])
    modes.extend([s.st_mode for s in stats])
    inodes.extend([s.st_ino for s in stats])
    subdirs: list[str] = []
    if len(files) < len(entries):
        for e in entries:
            if _entry_is(e, "file", follow):
                continue
            if _entry_is(e, "dir", follow):
                subdirs.append(prefix + e.name)
            elif e.is_symlink():  # not followed, or dangling
                counters.symlinks_skipped += 1
    return subdirs


def walk_one(current: str, follow: bool, seen: set[tuple[int, int]] | None, paths: list[str], sizes: list[int],
             mtimes: list[float], modes: list[int], inodes: list[int], counters: WalkCounters) -> list[str] | None:
    """List one directory into the columns; its subdirectories, or None if it was unreadable or seen."""
    try:
        fd = os.open(current, DIR_FLAGS)
    except OSError as exc:
        counters.add_error(current, exc)
        return None
    try:
        if seen is not None:  # following links: never list a directory twice (loops)
            s = os.fstat(fd)
            key = (s.st_dev, s.st_ino)
            if key in seen:
                return None
            seen.add(key)
        n_before = len(paths)
        try:
            subdirs = list_dir(fd, current, follow, paths, sizes, mtimes, modes, inodes, counters)
        except OSError as exc:
            del paths[n_before:], sizes[n_before:], mtimes[n_before:], modes[n_before:], inodes[n_before:]
            counters.add_error(current, exc)
            return None
    finally:
        os.close(fd)
    counters.dirs += 1
    subdirs.sort(reverse=True)
    return subdirs


def _send(out: Any, message: tuple[Any, ...]) -> None:
    data = marshal.dumps(message)
    out.write(_LEN.pack(len(data)))
    out.write(data)


def read_message(stream: Any) -> tuple[Any, ...] | None:
    """One message from a helper walker's stdout; None at end of stream."""
    head = stream.read(_LEN.size)
    if len(head) < _LEN.size:
        return None
    return marshal.loads(stream.read(_LEN.unpack(head)[0]))


def main() -> None:
    """Helper-process entry: walk the given directories, stream whole-directory batches."""
    dirs, follow, batch_size = marshal.loads(sys.stdin.buffer.read())
    out = sys.stdout.buffer
    counters = WalkCounters()
    seen: set[tuple[int, int]] | None = set() if follow else None
    stack = list(reversed(dirs))
    paths: list[str] = []
    sizes: list[int] = []
    mtimes: list[float] = []
    modes: list[int] = []
    inodes: list[int] = []
    while stack:
        subdirs = walk_one(stack.pop(), follow, seen, paths, sizes, mtimes, modes, inodes, counters)
        if subdirs:
            stack.extend(subdirs)
        if len(paths) >= batch_size:
            _send(out, ("batch", paths, sizes, mtimes, modes, inodes))
            paths, sizes, mtimes, modes, inodes = [], [], [], [], []
    if paths:
        _send(out, ("batch", paths, sizes, mtimes, modes, inodes))
    _send(out, ("end", counters.dirs, counters.symlinks_skipped, counters.errors))
    out.flush()


if __name__ == "__main__":
    main()
