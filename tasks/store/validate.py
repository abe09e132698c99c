"""The output contract of a metadata directory, checked: what `xtract validate` and the tests run.

OUT/index.parquet: one row per crawled file, columns path, size, mtime, extension, mime,
extractor, group_id, status (ok | error | unknown | skipped), error; every path once.
OUT/groups/<group_id>.json: group_id, extractor, extractor_version, files [{path, size,
mtime, extension, mime}], metadata, errors, extracted_at; every indexed file belongs to
exactly the group file its row names, and every group file's files are indexed.
index.parquet may be one file or a directory dataset of parts; OUT/facts.parquet, when present,
has the columns path, group_id, extractor, key, value_text, value_num.
Prefect-free and pandas-free (pyarrow only), so it is quick on a million rows.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

from tasks.store import dataset
from tasks.store.layout import MetadataDir

INDEX_COLUMNS = ("path", "size", "mtime", "extension", "mime", "extractor", "group_id", "status", "error")
FACT_COLUMNS = ("path", "group_id", "extractor", "key", "value_text", "value_num")
STATUSES = frozenset({"ok", "error", "unknown", "skipped"})
GROUP_KEYS = ("group_id", "extractor", "extractor_version", "files", "metadata", "errors", "extracted_at")
FILE_KEYS = ("path", "size", "mtime", "extension", "mime")
#: examples shown per kind of problem
SHOW = 3


def _examples(items: list[str]) -> str:
    shown = ", ".join(repr(i) for i in sorted(items)[:SHOW])
    return shown + (f" (and {len(items) - SHOW} more)" if len(items) > SHOW else "")


def _group_files(groups_dir: str) -> Iterator[os.DirEntry[str]]:
    try:
        with os.scandir(groups_dir) as it:
            yield from (e for e in it if e.name.endswith(".json") and not e.name.startswith("."))
    except FileNotFoundError:
        return


def _check_facts(path: str) -> list[str]:
    """facts.parquet is optional (the search-index stage writes it); when present it must be readable."""
    import pyarrow.parquet as pq

    problems = []
    for f in dataset.data_files(path) if dataset.exists(path) else []:
        try:
            names = pq.read_schema(f).names
        except Exception as exc:  # noqa: BLE001 - any unreadable file is one problem, named
            problems.append(f"{f} is not a readable Parquet file: {type(exc).__name__}: {exc}")
            continue
        if missing := [c for c in FACT_COLUMNS if c not in names]:
            problems.append(f"{f} lacks columns {missing}")
    return problems


def validate_metadata_dir(path: str, *, expected_files: int | None = None) -> list[str]:
    """Every way ``path`` breaks the contract, one line each (empty: it holds)."""
    out = MetadataDir.of(path)
    if not os.path.isdir(out.root):
        return [f"{out.root} is not a directory"]
    if not dataset.exists(out.index):
        return [f"{out.index} is missing"]
    try:  # a single file (older runs) or a directory dataset of parts (tasks/store/dataset.py)
        table = dataset.read_table(out.index)
    except Exception as exc:  # noqa: BLE001 - any unreadable index is one problem, named
        return [f"{out.index} is not a readable Parquet file or dataset: {type(exc).__name__}: {exc}"]
    missing = [c for c in INDEX_COLUMNS if c not in table.column_names]
    if missing:
        return [f"index.parquet lacks columns {missing}"]
    problems: list[str] = _check_facts(out.facts)
    paths = table.column("path").to_pylist()
    group_ids = [str(g) for g in table.column("group_id").to_pylist()]
    statuses = table.column("status").to_pylist()
    seen: set[str] = set()
    twice = [p for p in paths if p in seen or seen.add(p)]  # type: ignore[func-returns-value]
    if twice:
        problems.append(f"index.parquet lists {len(twice)} paths more than once: {_examples(twice)}")
    bad = sorted({str(s) for s in statuses} - STATUSES)
    if bad:
        problems.append(f"index.parquet has statuses outside {sorted(STATUSES)}: {bad}")
    if expected_files is not None and len(paths) != expected_files:
        problems.append(f"index.parquet has {len(paths)} rows, expected {expected_files}")

    in_groups: dict[str, str] = {}
    for entry in sorted(_group_files(out.groups), key=lambda e: e.name):
        name = entry.name
        try:
            with open(entry.path, encoding="utf-8") as fh:
                doc = json.load(fh)
        except (OSError, ValueError) as exc:
            problems.append(f"groups/{name} is not valid JSON: {exc}")
            continue
        if not isinstance(doc, dict):
            problems.append(f"groups/{name} is not a JSON object")
            continue
        lacks = [k for k in GROUP_KEYS if k not in doc]
        if lacks:
            problems.append(f"groups/{name} lacks {lacks}")
            continue
        if name[:-5] != str(doc["group_id"]):
            problems.append(f"groups/{name} holds group_id {doc['group_id']!r}")
        files = doc["files"] if isinstance(doc["files"], list) else []
        if not files:
            problems.append(f"groups/{name} lists no files")
        for f in files:
            lacks = [k for k in FILE_KEYS if not isinstance(f, dict) or k not in f]
            if lacks:
                problems.append(f"groups/{name}: a file entry lacks {lacks}")
                break
            if f["path"] in in_groups:
                problems.append(f"{f['path']!r} is in two group files ({in_groups[f['path']]}, {name[:-5]})")
            in_groups[f["path"]] = name[:-5]
    indexed = set(paths)
    orphans = [p for p in indexed if p not in in_groups]
    strays = [p for p in in_groups if p not in indexed]
    if orphans:
        problems.append(f"{len(orphans)} indexed files are in no group file: {_examples(orphans)}")
    if strays:
        problems.append(f"{len(strays)} files of group files have no index row: {_examples(strays)}")
    wrong = [p for p, gid in zip(paths, group_ids, strict=True) if p in in_groups and in_groups[p] != gid]
    if wrong:
        problems.append(f"{len(wrong)} index rows name another group than the file's group file: "
                        f"{_examples(wrong)}")
    return problems
