"""Extraction rate when the Prefect API goes away mid-run, against the same run with the API alive.

Issue 21: each progress update used to block the extraction loop while Prefect's client retried
a dead server (~700 -> ~3 groups/s). Now status is published off the loop, so the rate with the
API gone should match the rate with it alive. Both sides are the real ``xtract run`` against a
Prefect server started here (``flows.prefect_server.OwnedServer``, as an external server: never
restarted); the rate is read from the journal (groups committed per second, from the first
commit to the last), so the flow's end, which does depend on the API, is outside the figure.

    .venv/bin/python bench/lost_server.py [--files 10000] [--repeat 1]

Last line of stdout: JSON with ``alive_groups_per_s, lost_groups_per_s, ratio, lost_rc,
lost_exit_s_after_kill, lost_exit_s_after_done`` (from the last group journalled to the exit: the
run's end, which with the API lost used to be Prefect's minute and a half of retries), ``files``.
Target: ratio >= 0.9, lost_exit_s_after_done a few seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from flows.prefect_server import OwnedServer  # noqa: E402


def make_tree(root: Path, files: int) -> Path:
    stamp = root / ".stamp"
    if stamp.exists() and stamp.read_text() == str(files):
        return root
    root.mkdir(parents=True, exist_ok=True)
    for i in range(files):
        d = root / f"d{i // 1000:03d}"
        d.mkdir(exist_ok=True)
        (d / f"f{i:06d}.csv").write_text(f"a,b,c\n{i},{i * 0.5},x\n{i + 1},{i * 1.5},y\n")
    stamp.write_text(str(files))
    return root


def journalled(out: Path) -> int:
    try:
        db = sqlite3.connect(f"file:{out / '.xtract' / 'state.sqlite'}?mode=ro", uri=True, timeout=1)
        try:
            return int(db.execute("SELECT count(*) FROM groups").fetchone()[0])
        finally:
            db.close()
    except sqlite3.Error:
        return 0


def one_run(tree: Path, work: Path, files: int, *, lose_api: bool) -> dict[str, float]:
    """One ``xtract run``; with ``lose_api`` its server is SIGKILLed once a tenth of the groups are done."""
    server = OwnedServer().start()
    url = server.wait_ready()
    server._stopping.set()  # an external server: nobody restarts it
    out = work / f"out-{'lost' if lose_api else 'alive'}-{time.monotonic_ns()}"
    env = {**os.environ, "PREFECT_API_URL": url, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "flows.cli", "run", str(tree), "-o", str(out), "--workers", "2", "-q"]
    proc = subprocess.Popen(cmd, env=env, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first_t = first_n = None
    killed_at = None
    try:
        while True:
            n = journalled(out)
            now = time.monotonic()
            if first_t is None and n > 0:
                first_t, first_n = now, n
            if lose_api and killed_at is None and n >= files // 10:
                server.proc.kill()  # type: ignore[union-attr]
                killed_at = now
            if n >= files:
                done_t = now
                break
            if proc.poll() is not None:
                raise RuntimeError(f"xtract run ended (rc {proc.returncode}) with {n} of {files} groups journalled")
            time.sleep(0.05)
        rc = proc.wait(timeout=900)
        exit_s = time.monotonic() - killed_at if killed_at is not None else None
        end_s = time.monotonic() - done_t  # from the last group journalled to the process's exit
    finally:
        if proc.poll() is None:
            proc.kill()
        server.stop()
    assert first_t is not None and first_n is not None
    rate = (files - first_n) / max(done_t - first_t, 1e-6)
    return {"groups_per_s": rate, "rc": rc, "exit_s_after_kill": exit_s, "exit_s_after_done": end_s}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()
    base = Path(os.environ.get("TMPDIR", tempfile.gettempdir())) / "xtract-bench"
    tree = make_tree(base / f"lost-server-{args.files}", args.files)
    with tempfile.TemporaryDirectory(prefix="lost-server-", dir=base) as tmp:
        work = Path(tmp)
        os.environ["PREFECT_HOME"] = str(work / "prefect-home")
        alive, lost = [], []
        for r in range(args.repeat):  # alternating, best of each
            print(f"round {r + 1}: API alive", file=sys.stderr)
            alive.append(one_run(tree, work, args.files, lose_api=False))
            print(f"round {r + 1}: API lost after 10%", file=sys.stderr)
            lost.append(one_run(tree, work, args.files, lose_api=True))
    best_alive = max(a["groups_per_s"] for a in alive)
    best_lost = max(x["groups_per_s"] for x in lost)
    print(json.dumps({
        "files": args.files,
        "alive_groups_per_s": round(best_alive, 1),
        "lost_groups_per_s": round(best_lost, 1),
        "ratio": round(best_lost / best_alive, 3),
        "alive_rounds": [round(a["groups_per_s"], 1) for a in alive],
        "lost_rounds": [round(x["groups_per_s"], 1) for x in lost],
        "lost_rc": [x["rc"] for x in lost],
        "lost_exit_s_after_kill": [round(x["exit_s_after_kill"] or 0.0, 1) for x in lost],
        "lost_exit_s_after_done": [round(x["exit_s_after_done"], 1) for x in lost],
        "alive_exit_s_after_done": [round(a["exit_s_after_done"], 1) for a in alive],
        "load_average": os.getloadavg()[0],
    }))


if __name__ == "__main__":
    main()
