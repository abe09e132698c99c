"""The function registered with Globus Compute and run on the remote endpoint.

It is shipped by source (``PureSourceTextInspect``), so it must be one plain
top-level function that imports inside its body (gladier style): the endpoint's
worker (or its container) needs only the ``extractors`` package, never Prefect
or this module. Its checksum is what registration is keyed on.

Results must stay under the service's result limit (10 MB). The function counts
the JSON size of what it returns and stops early when the next group would cross
``max_result_bytes``; the groups it did not do are named in ``remaining`` and the
caller submits them again (chunking). A single group whose metadata alone is too
large is written on the endpoint instead, under ``remote_mdata_dir`` (a directory
of the compute endpoint's Globus collection, as the worker sees it), and only a
pointer travels back (``doc`` None, ``doc_ref`` {name, bytes}); the flow transfers
the document home. Without ``remote_mdata_dir`` such a group keeps its per-file
outcomes and loses its metadata, with an error saying why.
"""


def xtract_remote_batch(groups, limit_s=None, max_result_bytes=9_000_000, remote_mdata_dir=None):
    """Extract ``groups`` with ``extractors.batch.run_batch``; return results and the groups left over."""
    import hashlib
    import json
    import os

    from extractors.batch import run_batch, write_json_atomic

    results = []
    used = 64  # the envelope: {"results": [...], "remaining": [...]}
    for i, group in enumerate(groups):
        res = run_batch([group], limit_s=limit_s)[0]
        size = len(json.dumps(res, ensure_ascii=False)) + 2
        if size > max_result_bytes and remote_mdata_dir:
            # the name is a digest: a group id never becomes a path on the endpoint
            name = hashlib.sha256(str(group["group_id"]).encode("utf-8")).hexdigest()[:32] + ".json"
            ref = {**res, "doc": None, "doc_ref": {"name": name, "bytes": size}}
            ref_size = len(json.dumps(ref, ensure_ascii=False)) + 2
            if ref_size <= max_result_bytes:  # else even the per-file outcomes are too many: dropped below
                os.makedirs(remote_mdata_dir, exist_ok=True)
                write_json_atomic(os.path.join(remote_mdata_dir, name), res["doc"])
                res, size = ref, ref_size
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
