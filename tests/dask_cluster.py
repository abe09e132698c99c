"""A real Dask cluster started from the CLI on loopback (`dask scheduler`, `dask worker`): not a LocalCluster."""

from __future__ import annotations

import os
import pathlib
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field

REPO = pathlib.Path(__file__).resolve().parents[1]
DASK = str(pathlib.Path(sys.executable).with_name("dask"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class CliCluster:
    """Scheduler and workers as separate processes, as on a cluster; each in its own process group."""

    env: dict[str, str]
    log_dir: pathlib.Path
    port: int = field(default_factory=free_port)
    scheduler: subprocess.Popen | None = None
    workers: list[subprocess.Popen] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen:
        log = open(self.log_dir / f"{name}.log", "ab")
        return subprocess.Popen(argv, env=self.env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)

    def start_scheduler(self) -> None:
        self.scheduler = self._spawn("scheduler", [DASK, "scheduler", "--host", "127.0.0.1", "--port",
                                                   str(self.port), "--no-dashboard"])

    def add_worker(self) -> subprocess.Popen:
        proc = self._spawn(f"worker-{len(self.workers)}", [
            DASK, "worker", self.address, "--nworkers", "1", "--nthreads", "1", "--no-dashboard",
            "--memory-limit", "1GiB", "--death-timeout", "20", "--host", "127.0.0.1"])
        self.workers.append(proc)
        return proc

    def wait_for_workers(self, n: int, timeout_s: float = 120) -> None:
        from distributed import Client

        with Client(self.address, timeout=timeout_s) as client:
            client.wait_for_workers(n, timeout=timeout_s)

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-2000:]}" for p in self.log_dir.glob("*.log"))

    @staticmethod
    def kill(proc: subprocess.Popen) -> None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=30)

    def stop(self) -> None:
        for proc in [*self.workers, *([self.scheduler] if self.scheduler else [])]:
            if proc.poll() is None:
                self.kill(proc)


def start_cluster(env: dict[str, str], log_dir: pathlib.Path, workers: int = 2) -> CliCluster:
    log_dir.mkdir(parents=True, exist_ok=True)
    cluster = CliCluster(env=env, log_dir=log_dir)
    cluster.start_scheduler()
    for _ in range(workers):
        cluster.add_worker()
    try:
        cluster.wait_for_workers(workers)
    except Exception:
        logs = cluster.logs()
        cluster.stop()
        raise RuntimeError(f"the CLI Dask cluster did not come up:\n{logs}") from None
    time.sleep(0.5)
    return cluster
