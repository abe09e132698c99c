"""One worker process of the local Globus Compute stand-in; run as a script, never imported.

It behaves like an endpoint worker: it deserializes the registered function and
its arguments with the SDK's ComputeSerializer, runs it in its main thread (so the
extractors' signal-based time limit works), and serializes the result as JSON,
refusing results over the size limit. Only the ``extractors`` package is
importable: this project's Prefect-side packages and Prefect itself are blocked,
which proves the entry function needs nothing a container would not have.

Protocol on stdin/stdout: a decimal byte length, a newline, then that many bytes
of JSON, in both directions. Anything the extractors print goes to stderr.
"""

from __future__ import annotations

import json
import os
import sys
import traceback

BLOCKED = frozenset({"prefect", "tasks", "flows", "xtract_blocks", "bench"})


class _Blocker:
    """Refuse imports a remote endpoint would not have."""

    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        if name.split(".", 1)[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r} (not available on the compute endpoint)")
        return None


def _read(stream) -> dict | None:
    line = stream.readline()
    if not line:
        return None
    return json.loads(stream.read(int(line)))


def _write(stream, msg: dict) -> None:
    data = json.dumps(msg).encode("utf-8")
    stream.write(b"%d\n" % len(data) + data)
    stream.flush()


def main() -> None:
    root, result_limit, memory_mb = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [root] + [p for p in sys.path if p and os.path.abspath(p) != here]
    sys.meta_path.insert(0, _Blocker())
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # prints from extractors must not corrupt the protocol
    from globus_compute_sdk.serialize import ComputeSerializer, JSONData

    from extractors.limits import init_worker

    init_worker(memory_mb or None)
    serde = ComputeSerializer()
    result_serde = ComputeSerializer(strategy_data=JSONData())
    functions: dict[str, object] = {}
    while True:
        msg = _read(sys.stdin.buffer)
        if msg is None:
            return
        try:
            fn = functions.get(msg["fid"])
            if fn is None:
                fn = functions[msg["fid"]] = serde.deserialize(msg["code"])
            args, kwargs = (serde.deserialize(b) for b in serde.unpack_buffers(msg["payload"]))
            result = result_serde.serialize(fn(*args, **kwargs))
            if len(result.encode("utf-8")) > result_limit:
                _write(out, {"ok": False, "kind": "MaxResultSizeExceeded", "size": len(result.encode("utf-8"))})
            else:
                _write(out, {"ok": True, "result": result})
        except BaseException:  # noqa: BLE001 - every failure goes back as the task's error
            _write(out, {"ok": False, "kind": "TaskExecutionFailed", "error": traceback.format_exc()[-20000:]})


if __name__ == "__main__":
    main()
