"""Local crawl roots normalized and de-duplicated: every file is crawled once, whatever the arguments.

``xtract run t t`` or ``xtract run t t/f1.csv`` (or a symlink into a tree that is also
given) would otherwise list the same files twice; a directory group would then hold a
file twice and the output would break its contract. Standard library only: the CLI
checks its PATHs with it before Prefect or pyarrow is imported, and the local crawler
applies it again to a block's ``dirs``.
"""

from __future__ import annotations

import os


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def distinct_roots(paths: list[str]) -> tuple[list[str], list[tuple[str, str]]]:
    """(roots to crawl, [(dropped, the root that covers it)]), in the order given.

    Roots are made absolute; a root whose real location (symlinks resolved) equals or lies
    inside another root's real location is dropped, the outermost root winning.
    """
    absolute = [os.path.abspath(os.path.expanduser(p)) for p in paths]
    real = [os.path.realpath(p) for p in absolute]
    kept: list[str] = []
    dropped: list[tuple[str, str]] = []
    for i, path in enumerate(absolute):
        cover = None
        for j, other in enumerate(real):
            if j == i or not _inside(real[i], other):
                continue
            if real[i] != other or j < i:  # strictly inside, or the same place given earlier
                cover = absolute[j]
                break
        if cover is None:
            kept.append(path)
        else:
            dropped.append((path, cover))
    return kept, dropped
