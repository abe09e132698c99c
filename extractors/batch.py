"""Run a batch of groups through their extractors: the function workers execute.

This is the one entry point shipped to every executor (process pool, Dask,
Globus Compute), so it is a plain top-level function over plain dicts. A failing
or hanging file becomes an error record for that file; the batch always returns.
Paths arrive as text (``extractors.fspath``) and are turned back into real names
here; each file is stat-ed again, because a crawl can be hours old: a file that
changed is described as it is now, one that vanished becomes a clear error.
The only failure that escapes a batch is not being able to write metadata (a full
disk): retrying elsewhere cannot help, so the caller must stop.
"""

from __future__ import annotations

import errno
import itertools
import json
import os
import stat
import tempfile
import time
from datetime import UTC, datetime
from typing import Any

from extractors.base import Extractor, NotMyFormat, PartialMetadata
from extractors.fspath import clean_strings, to_fs, to_text
from extractors.jsonable import to_jsonable
from extractors.limits import GroupTimeout, memory_cap_message, time_limit
from extractors.physical import PHYSICAL
from extractors.registry import AMBIGUOUS_EXTENSIONS, Registry, default_registry

try:  # a dependency of the package; a bare extraction environment (a Compute endpoint) may lack it
    import orjson
except ImportError:  # pragma: no cover - exercised only where orjson is not installed
    orjson = None  # type: ignore[assignment]

#: Group-level extractor name when members use different extractors.
MIXED = "matio"
#: errno values that mean "the metadata disk cannot take more": never retried.
DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


class MetadataWriteError(OSError):
    """Metadata could not be written (disk full, quota, file size limit); stops the run."""


_TMP_SEQ = itertools.count()


def _encode(doc: dict[str, Any]) -> bytes:
    """UTF-8 JSON of a group document: orjson (a fifth of the standard library's time, on every group)
    when it can; the standard library for what orjson refuses (integers past 64 bits, non-text keys,
    lone surrogates), where a lone surrogate from an extractor is made valid text."""
    if orjson is not None:
        try:
            return orjson.dumps(doc)
        except orjson.JSONEncodeError:
            pass
    try:
        return json.dumps(doc, ensure_ascii=False, allow_nan=False).encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(clean_strings(doc), ensure_ascii=False, allow_nan=False).encode("utf-8")


def write_json_atomic(path: str, doc: dict[str, Any]) -> None:
    """Write JSON so that readers only ever see a complete file, with the user's umask.

    A name never holds a partial file: the bytes go to ``.tmp-*`` in the same
    directory and are renamed over the target. ``remove_partial_files`` sweeps
    what a killed process leaves behind.
    """
    data = _encode(doc)
    directory = os.path.dirname(path)
    # Hot path (one call per group): a pid+counter name created 0o666, so the kernel applies the
    # umask; mkstemp's 0o600 would cost a chmod and two umask calls per file. O_EXCL keeps it safe.
    tmp = os.path.join(directory, f".tmp-{os.getpid()}-{next(_TMP_SEQ)}.part")  # never matches *.json
    try:
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
            mode_ok = True
        except FileExistsError:  # a leftover of an earlier process with the same pid
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".part", dir=directory)
            mode_ok = False
    except OSError as exc:
        raise _write_error(exc, path) from exc
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        if not mode_ok:
            os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise _write_error(exc, path) from exc
        raise


def _write_error(exc: OSError, path: str) -> OSError:
    if exc.errno in DISK_FULL_ERRNOS:
        return MetadataWriteError(exc.errno, f"cannot write metadata ({exc.strerror})", to_text(path))
    return exc


def current_umask() -> int:
    """The process umask, read without changing it.

    ``os.umask`` can only be read by setting it, and setting it to 0 even for a
    moment would let a file created by another thread be world-writable; Linux
    publishes the value in /proc/self/status instead.
    """
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return _umask_fallback()


def _umask_fallback() -> int:
    global _UMASK
    if _UMASK is None:  # once per process, before worker threads exist
        _UMASK = os.umask(0o022)
        os.umask(_UMASK)
    return _UMASK


_UMASK: int | None = None


def remove_partial_files(directory: str) -> int:
    """Delete ``.tmp-*`` files a killed writer left in ``directory``; returns how many.

    Only call when no writer of this metadata directory is running (start of a run).
    """
    removed = 0
    try:
        with os.scandir(directory) as it:
            for entry in it:
                if entry.name.startswith(".tmp-"):
                    try:
                        os.unlink(entry.path)
                        removed += 1
                    except FileNotFoundError:
                        pass
    except FileNotFoundError:
        pass
    return removed


def _error(path: str, extractor: str, exc: BaseException) -> dict[str, str]:
    return {"path": path, "extractor": extractor, "type": type(exc).__name__, "message": to_text(str(exc)[:2000])}


class ChangedAfterCrawl(OSError):
    """The path is no longer the regular file the crawl saw (now a symlink, a FIFO, a directory...)."""


#: Opening a path to check it: never through a final symlink, never blocking on a FIFO.
_CHECK_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)


def _restat(f: dict[str, Any], *, follow_symlinks: bool = False) -> tuple[dict[str, Any], BaseException | None]:
    """The file's record as it is now; an error when it vanished, cannot be read, or is no longer a file.

    The path is opened with O_NOFOLLOW (unless the run follows symlinks) and checked with
    fstat on that descriptor: a file replaced by a symlink after the crawl is refused, not
    read through the link, and a FIFO or directory put in its place is not a file. With the
    crawl's ``inode`` (local crawls record it) a path that now names another file (one
    renamed over it) is refused too; a file that merely grew keeps its path's inode and is
    described as it is now. ``expect_size`` (set by staging: the listing's size of a copied
    remote file) must match exactly: a copy of another size is not the file the listing saw.
    """
    flags = _CHECK_FLAGS if not follow_symlinks else _CHECK_FLAGS & ~getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(to_fs(f["path"]), flags)
    except FileNotFoundError:
        return f, FileNotFoundError(errno.ENOENT, "file vanished after the crawl (deleted or moved)")
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.EMLINK) and not follow_symlinks:
            return f, ChangedAfterCrawl(errno.ELOOP, "changed after the crawl: now a symbolic link (not followed)")
        return f, exc
    try:
        st = os.fstat(fd)
    finally:
        os.close(fd)
    if not stat.S_ISREG(st.st_mode):
        return f, ChangedAfterCrawl(errno.EINVAL, "changed after the crawl: no longer a regular file")
    inode = f.get("inode")
    if inode is not None and st.st_ino != inode:
        return f, ChangedAfterCrawl(f"changed after the crawl: the path now names another file (inode {st.st_ino}, "
                                    f"the crawl saw {inode})")
    expected = f.get("expect_size")
    if expected is not None and st.st_size != expected:
        return f, ChangedAfterCrawl(f"changed after the crawl: {f['path']} has {st.st_size} bytes here, the listing "
                                    f"said {expected}")
    if st.st_size != f["size"] or st.st_mtime != f["mtime"]:
        f = {**f, "size": st.st_size, "mtime": st.st_mtime}
    return f, None


def extract_group(group: dict[str, Any], *, limit_s: float | None = None) -> dict[str, Any]:
    """Extract one group; returns its metadata document with per-file outcomes.

    Every member gets exactly one outcome: ok, unknown (no extractor claims it) or
    error (the extractor failed, the file vanished, or the group ran out of time).
    """
    registry = default_registry()
    started = time.perf_counter()
    files_out: list[dict[str, Any]] = []
    per_extractor: dict[str, dict[str, Any]] = {}
    errors: list[dict[str, str]] = []
    versions: dict[str, str] = {}
    chains: dict[str, list[dict[str, str]]] = {}
    multi = len(group["files"]) > 1
    timeout_msg = f"TimeoutError: file exceeded its time limit of {limit_s}s"
    follow = bool(group.get("follow_symlinks"))
    with time_limit(limit_s) as deadline:
        for f in group["files"]:
            deadline.restart()  # the limit is per file: a large group is not one budget
            path = f["path"]
            f, stat_error = _restat(f, follow_symlinks=follow)
            mime, ex, use = f.get("mime"), None, None
            status, error, result = "error", None, None
            chain: list[dict[str, str]] = []
            if stat_error is not None:
                error = f"{type(stat_error).__name__}: {to_text(str(stat_error))[:500]}"
                errors.append(_error(path, f.get("extractor") or "", stat_error))
            elif deadline.expired:
                error = timeout_msg
                errors.append({"path": path, "extractor": "", "type": "TimeoutError", "message": error})
            else:
                try:
                    with deadline.guard():
                        fs = to_fs(path)
                        mime, ex = registry.infer(fs, f.get("extension", ""))
                        mime, ex, result = _run_chain(registry, fs, f.get("extension", ""), mime, ex, chain)
                        use = ex or PHYSICAL
                        if result is None:
                            result = use.func(fs)
                    status = "ok" if ex is not None else "unknown"
                except PartialMetadata as exc:  # a damaged file: keep what was read
                    use = registry.by_name.get(chain[-1]["extractor"], PHYSICAL) if chain else PHYSICAL
                    if chain:
                        chain[-1].update(outcome="partial", message=to_text(str(exc))[:200])
                    result = {**exc.metadata, "partial": True}
                    error = f"{type(exc).__name__}: {to_text(str(exc))[:500]}"
                    errors.append(_error(path, use.name, exc))
                except GroupTimeout:
                    use = use or ex or PHYSICAL
                    error = timeout_msg
                    errors.append({"path": path, "extractor": use.name, "type": "TimeoutError", "message": error})
                except (Exception, MemoryError, RecursionError) as exc:  # noqa: BLE001 - one bad file is a record
                    named = getattr(exc, "xtract_extractor", None)  # set by the chain for a content guess
                    if named:
                        use = registry.by_name.get(named)
                    elif chain and not isinstance(exc, NotMyFormat):  # the candidate that failed, not the first
                        chain[-1].update(outcome="error", message=to_text(str(exc))[:200])
                        use = registry.by_name.get(chain[-1]["extractor"])
                    use = use or ex or PHYSICAL
                    result = None
                    capped = memory_cap_message(exc)
                    error = f"MemoryError: {capped}" if capped else f"{type(exc).__name__}: {to_text(str(exc))[:500]}"
                    errors.append(_error(path, use.name, MemoryError(capped) if capped else exc))
            if use is not None:
                versions[use.name] = use.version
            if len(chain) > 1:
                chains[path] = chain
            if result is not None and use is not None:
                slot = per_extractor.setdefault(use.name, {"members": {}} if multi else {})
                if multi:
                    slot["members"][path] = result
                else:
                    slot.update(result)
            files_out.append({**_file_fields(f, mime), "extractor": use.name if use else f.get("extractor"),
                              "status": status, "error": error})
    names = sorted({f["extractor"] for f in files_out if f["extractor"]})
    extractor = names[0] if len(names) == 1 else (MIXED if names else PHYSICAL.name)
    doc = {
        "group_id": group["group_id"],
        "extractor": extractor,
        "extractor_version": versions.get(extractor) or ",".join(f"{k}={v}" for k, v in sorted(versions.items())),
        "files": [_file_fields(f, f["mime"]) for f in files_out],
        "metadata": to_jsonable(per_extractor),
        "errors": errors,
        "extracted_at": datetime.now(UTC).isoformat(),
        "fingerprint": group.get("fingerprint"),
        "endpoint": group.get("endpoint"),
        "seconds": round(time.perf_counter() - started, 6),
        # which extractor (and version) produced each metadata.<name> part
        "provenance": {name: versions[name] for name in per_extractor if name in versions},
    }
    if chains:
        doc["chain"] = chains  # files whose first candidates said "not my format"
    return {"doc": doc, "files": files_out}


def _run_chain(registry: Registry, fs: str, extension: str, mime: str | None, ex: Extractor | None,
               chain: list[dict[str, str]]) -> tuple[str | None, Extractor | None, dict[str, Any] | None]:
    """(mime, extractor, result) from the first candidate that accepts the file.

    The dispatcher's choice runs first; when it raises ``NotMyFormat`` the registry's
    fallbacks (content signature, sniffers, text sniff, free text) run in order. An
    extractor chosen by the file's specific extension that fails otherwise has met a
    damaged file: that error propagates. One chosen by a content sniff (a .txt that
    looked like a table, a template that looked like XML) that fails was a wrong
    guess: the chain goes on, and only when no candidate accepts the file does the
    first such error propagate. When every candidate refuses, the file is unknown:
    (mime, None, None) and the caller takes physical metadata, unless its specific
    extension promised the refusing extractor's format (garbage named .fits: an error).
    ``chain`` records each attempt: {extractor, version, outcome[, message]}.
    """
    if ex is None:
        return mime, None, None
    by_extension = extension not in AMBIGUOUS_EXTENSIONS and registry.by_extension.get(extension) is ex
    candidates: list[tuple[str | None, Extractor]] = [(mime, ex)]
    refusal: NotMyFormat | None = None
    first_error: Exception | None = None
    i = 0
    while i < len(candidates):
        cmime, cex = candidates[i]
        chain.append({"extractor": cex.name, "version": cex.version, "outcome": "ok"})
        try:
            return cmime, cex, cex.func(fs)
        except NotMyFormat as exc:
            chain[-1].update(outcome="not_my_format", message=to_text(str(exc))[:200])
            refusal = refusal or exc
        except (GroupTimeout, PartialMetadata):
            raise
        except Exception as exc:  # noqa: BLE001 - judged below: damaged file or wrong guess
            if by_extension and i == 0:
                raise
            chain[-1].update(outcome="error", message=to_text(str(exc))[:200])
            try:
                exc.xtract_extractor = cex.name  # type: ignore[attr-defined]
            except AttributeError:  # an exception type without a __dict__
                pass
            first_error = first_error or exc
        if i == 0:
            candidates += registry.fallbacks(fs, extension, {cex.name})
        i += 1
    if first_error is not None:
        raise first_error
    if refusal is not None and by_extension:
        # a specific extension whose format nobody recognises (garbage named .fits): damaged, not unknown
        raise refusal
    return mime, None, None
    candidates: list[tuple[str | None, Extractor]] = [(mime, ex)]
    refusal: NotMyFormat | None = None
    i = 0
    while i < len(candidates):
        cmime, cex = candidates[i]
        chain.append({"extractor": cex.name, "version": cex.version, "outcome": "ok"})
        try:
            return cmime, cex, cex.func(fs)
        except NotMyFormat as exc:
            chain[-1].update(outcome="not_my_format", message=to_text(str(exc))[:200])
            if i == 0:
                refusal = exc
                candidates += registry.fallbacks(fs, extension, {cex.name})
            i += 1
    if refusal is not None and extension not in AMBIGUOUS_EXTENSIONS and registry.by_extension.get(extension) is ex:
        # a specific extension whose format nobody recognises (garbage named .fits): damaged, not unknown
        chain[-1]["outcome"] = "not_my_format"
        raise refusal
    return mime, None, None


def _file_fields(f: dict[str, Any], mime: str | None) -> dict[str, Any]:
    return {"path": f["path"], "size": f["size"], "mtime": f["mtime"], "extension": f.get("extension", ""),
            "mime": mime}


def run_batch(
    groups: list[dict[str, Any]],
    *,
    out_dir: str | None = None,
    limit_s: float | None = None,
) -> list[dict[str, Any]]:
    """Extract every group of a batch.

    With ``out_dir`` (the worker shares the metadata disk) each group document is
    written there and only the per-file outcomes travel back; without it the
    documents are returned for the caller to write.
    """
    results = []
    groups_dir = os.path.join(out_dir, "groups") if out_dir else None
    for group in groups:
        res = extract_group(group, limit_s=limit_s)
        doc = res["doc"]
        if groups_dir:
            write_json_atomic(os.path.join(groups_dir, f"{doc['group_id']}.json"), doc)
            res = {"doc": None, "files": res["files"]}
        results.append({"group_id": group["group_id"], "fingerprint": group.get("fingerprint"),
                        "extractor": doc["extractor"], "extractor_version": doc["extractor_version"], **res})
    return results


def failed_group(group: dict[str, Any], reason: str) -> dict[str, Any]:
    """The result of a group whose worker never returned (died, hung, lost)."""
    kind = reason.split(":", 1)[0]
    files = [{**_file_fields(f, f.get("mime")), "extractor": f.get("extractor"), "status": "error", "error": reason}
             for f in group["files"]]
    doc = {
        "group_id": group["group_id"],
        "extractor": group.get("extractor") or PHYSICAL.name,
        "extractor_version": "",
        "files": [_file_fields(f, f.get("mime")) for f in group["files"]],
        "metadata": {},
        "errors": [{"path": f["path"], "extractor": f.get("extractor") or "", "type": kind, "message": reason}
                   for f in group["files"]],
        "extracted_at": datetime.now(UTC).isoformat(),
        "fingerprint": group.get("fingerprint"),
        "endpoint": group.get("endpoint"),
        "seconds": None,
    }
    return {"group_id": group["group_id"], "fingerprint": group.get("fingerprint"), "extractor": doc["extractor"],
            "extractor_version": "", "doc": doc, "files": files}
