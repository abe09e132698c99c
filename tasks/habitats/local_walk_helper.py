"""The parent's side of a helper walker process (tasks/habitats/local_walk.py run by path).

The helper is started with ``-I -S`` and imports only the standard library, so it
costs tens of milliseconds and never forks this (threaded) process. If it dies
before it sent anything, its directories are walked here instead; if it dies
part-way, the crawl fails loudly rather than silently missing files.
"""

from __future__ import annotations

import marshal
import os
import select
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import tasks.habitats.local_walk as walk
from tasks.habitats.local_walk import WalkCounters, read_message
from xtract_blocks.errors import CrawlError

Columns = tuple[list[str], list[int], list[float], list[int], list[int]]


class HelperWalkerError(CrawlError):
    """The helper walker process failed part-way through its directories."""


class HelperWalker:
    """Walks a share of the pending directories in a child process."""

    def __init__(self, dirs: list[str], follow: bool, batch_size: int) -> None:
        self.dirs = dirs
        self.follow = follow
        self.batch_size = batch_size
        self.counters = WalkCounters()
        self.received = 0
        self.finished = False
        self.proc = subprocess.Popen([sys.executable, "-I", "-S", os.path.abspath(walk.__file__)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(marshal.dumps((dirs, follow, batch_size)))
        self.proc.stdin.close()

    def ready(self) -> bool:
        """Whether a message is waiting (never blocks)."""
        return not self.finished and bool(select.select([self.proc.stdout], [], [], 0)[0])

    def next_batches(self) -> Iterator[Columns]:
        """The batches available now (reads one message)."""
        yield from self._handle(read_message(self.proc.stdout))

    def drain(self) -> Iterator[Columns]:
        """Every remaining batch, blocking until the helper is done."""
        while not self.finished:
            yield from self._handle(read_message(self.proc.stdout))

    def _handle(self, message: tuple[Any, ...] | None) -> Iterator[Columns]:
        if message is None:
            yield from self._helper_died()
            return
        if message[0] == "batch":
            self.received += 1
            yield message[1], message[2], message[3], message[4], message[5]
        else:  # ("end", dirs, symlinks, errors)
            self.finished = True
            self.counters.dirs += message[1]
            self.counters.symlinks_skipped += message[2]
            self.counters.errors.extend(tuple(e) for e in message[3])

    def _helper_died(self) -> Iterator[Columns]:
        self.finished = True
        self.proc.wait()
        reason = (self.proc.stderr.read() if self.proc.stderr else b"").decode(errors="replace").strip()
        if self.received:
            raise HelperWalkerError(f"crawl helper process exited with {self.proc.returncode} part-way: "
                                    f"{reason.splitlines()[-1] if reason else 'no message'}")
        # Nothing arrived from it: walk its directories here (slower, but nothing is lost).
        seen: set[tuple[int, int]] | None = set() if self.follow else None
        stack = list(reversed(self.dirs))
        cols: Columns = ([], [], [], [], [])
        while stack:
            subdirs = walk.walk_one(stack.pop(), self.follow, seen, *cols, self.counters)
            if subdirs:
                stack.extend(subdirs)
            if len(cols[0]) >= self.batch_size:
                yield cols
                cols = ([], [], [], [], [])
        if cols[0]:
            yield cols

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()
