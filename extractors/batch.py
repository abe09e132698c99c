"""Run a batch of groups through their extractors: the function workers execute.

This is the one entry point shipped to every executor (process pool, Dask,
Globus Compute), so it is a plain top-level function over plain dicts. A failing
or hanging file becomes an error record for that file; the batch always returns.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from datetime import UTC, datetime
from typing import Any

from extractors.jsonable import to_jsonable
from extractors.limits import GroupTimeout, time_limit
from extractors.physical import PHYSICAL
from extractors.registry import default_registry

#: Group-level extractor name when members use different extractors.
MIXED = "matio"


def write_json_atomic(path: str, doc: dict[str, Any]) -> None:
    """Write JSON so that readers only ever see a complete file."""
    directory = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(doc, fh, ensure_ascii=False, allow_nan=False)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _error(path: str, extractor: str, exc: BaseException) -> dict[str, str]:
    return {"path": path, "extractor": extractor, "type": type(exc).__name__, "message": str(exc)[:2000]}


def extract_group(group: dict[str, Any], *, limit_s: float | None = None) -> dict[str, Any]:
    """Extract one group; returns its metadata document with per-file outcomes."""
    registry = default_registry()
    started = time.perf_counter()
    files_out: list[dict[str, Any]] = []
    per_extractor: dict[str, dict[str, Any]] = {}
    errors: list[dict[str, str]] = []
    versions: dict[str, str] = {}
    timed_out = False
    multi = len(group["files"]) > 1
    with time_limit(limit_s):
        for f in group["files"]:
            path = f["path"]
            mime, ex = f.get("mime"), None
            status, error = "unknown", None
            if timed_out:
                status, error = "error", f"TimeoutError: group exceeded its time limit of {limit_s}s"
                errors.append({"path": path, "extractor": "", "type": "TimeoutError", "message": error})
                files_out.append({**_file_fields(f, mime), "extractor": None, "status": status, "error": error})
                continue
            try:
                mime, ex = registry.infer(path, f.get("extension", ""))
                use = ex or PHYSICAL
                result = use.func(path)
                status = "ok" if ex is not None else "unknown"
            except GroupTimeout:
                timed_out = True
                use = ex or PHYSICAL
                status, error = "error", f"TimeoutError: group exceeded its time limit of {limit_s}s"
                errors.append({"path": path, "extractor": use.name, "type": "TimeoutError", "message": error})
                result = None
            except (Exception, MemoryError, RecursionError) as exc:  # noqa: BLE001 - one bad file is a record
                use = ex or PHYSICAL
                status, error = "error", f"{type(exc).__name__}: {str(exc)[:500]}"
                errors.append(_error(path, use.name, exc))
                result = None
            versions[use.name] = use.version
            if result is not None:
                slot = per_extractor.setdefault(use.name, {"members": {}} if multi else {})
                if multi:
                    slot["members"][path] = result
                else:
                    slot.update(result)
            files_out.append({**_file_fields(f, mime), "extractor": use.name, "status": status, "error": error})
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
    }
    return {"doc": doc, "files": files_out}


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
