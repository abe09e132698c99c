"""The loopback service in its own process: ``python -m tests.globus_service --root DIR | --synthetic FILES DIRS``.

Prints one JSON line (url, endpoint_id, client_id, client_secret), then serves until
stdin closes. Benchmarks use it so the service does not share the crawler's GIL,
as the real service would not.
"""

from __future__ import annotations

import argparse
import json
import sys

from tests.globus_service.server import GlobusService


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", help="serve this directory")
    ap.add_argument("--synthetic", nargs=2, type=int, metavar=("FILES", "DIRS"),
                    help="serve a computed tree of FILES files in DIRS directories instead (no disk)")
    ap.add_argument("--latency-ms", type=float, default=0.0)
    args = ap.parse_args()
    with GlobusService() as svc:
        svc.ls_latency_s = args.latency_ms / 1000.0
        cid, secret = svc.add_client()
        if args.synthetic:
            ep = svc.transfer.add_synthetic_endpoint(*args.synthetic)
        else:
            ep = svc.transfer.add_endpoint(args.root)
        print(json.dumps({"url": svc.url, "endpoint_id": ep, "client_id": cid, "client_secret": secret,
                          "environ": svc.environ()}), flush=True)
        sys.stdin.read()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
