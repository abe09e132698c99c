"""The function registered with Globus Compute and run on the remote endpoint.

It is shipped by source (``PureSourceTextInspect``), so it must be one plain
top-level function that imports inside its body (gladier style): the endpoint's
worker (or its container) needs only the ``extractors`` package, never Prefect
or this module. Its checksum is what registration is keyed on.

Results must stay under the service's result limit (10 MB). The function counts
the JSON size of what it returns and stops early when the next group would cross
``max_result_bytes``; the groups it did not do are named in ``remaining`` and the
caller submits them again (chunking). A single group whose metadata alone is too
large keeps its per-file outcomes and loses its metadata, with an error saying why.
"""


def xtract_remote_batch(groups, limit_s=None, max_result_bytes=9_000_000):
    """Extract ``groups`` with ``extractors.batch.run_batch``; return results and the groups left over."""
    import json

    from extractors.batch import run_batch

    results = []
    used = 64  # the envelope: {"results": [...], "remaining": [...]}
    for i, group in enumerate(groups):
        res = run_batch([group], limit_s=limit_s)[0]
        size = len(json.dumps(res, ensure_ascii=False)) + 2
        if size > max_result_bytes:
            reason = (f"ResultTooLarge: metadata of {size} bytes exceeds the result limit of "
                      f"{max_result_bytes} bytes; metadata dropped")
            doc = res["doc"]
            doc["metadata"] = {}
            doc["errors"].append({"path": group["files"][0]["path"], "extractor": doc["extractor"],
                                  "type": "ResultTooLarge", "message": reason})
            for f in res["files"]:
                if f["status"] == "ok":
                    f["status"], f["error"] = "error", reason
            size = len(json.dumps(res, ensure_ascii=False)) + 2
        if results and used + size > max_result_bytes:
            return {"results": results, "remaining": [g["group_id"] for g in groups[i:]]}
        results.append(res)
        used += size
    return {"results": results, "remaining": []}
