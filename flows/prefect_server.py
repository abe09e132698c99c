"""The Prefect API server an ``xtract run`` starts for itself, in a session of its own.

Without ``PREFECT_API_URL`` Prefect would start a temporary server as a child in our
process group: Ctrl-C in a terminal sends SIGINT to the whole group, kills that server
with the run, and the run then spends minutes retrying state updates against it before
dying with a ConnectError traceback. Started here with ``start_new_session``, the
terminal's signals reach only the run, which records the interruption and then stops the
server itself. A server of ours that dies mid-run is started again on the same port (its
database is on disk), so the run's remaining state updates land; the run reports how
often that happened, because the UI missed what was sent meanwhile.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from contextlib import closing

#: How long the server may take to answer its health check (a first start migrates its database).
STARTUP_TIMEOUT_S = float(os.environ.get("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120"))


#: Servers started and not yet stopped, so an exit that cannot wait for Prefect still stops them.
_RUNNING: set[OwnedServer] = set()


def stop_all() -> None:
    """Stop every server this process started (a hurried exit calls it)."""
    for server in list(_RUNNING):
        server.stop(timeout_s=2.0)


def _free_port() -> int:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class OwnedServer:
    """A uvicorn process serving the Prefect API on a loopback port, restarted if it dies."""

    def __init__(self, port: int | None = None, *, poll_s: float = 0.5) -> None:
        self.port = port or _free_port()
        self.poll_s = poll_s
        self.proc: subprocess.Popen[bytes] | None = None
        #: times the server died under the run and was started again
        self.restarts = 0
        self._stopping = threading.Event()
        self._watcher: threading.Thread | None = None

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def start(self) -> OwnedServer:
        """Spawn the server (returns at once; ``wait_ready`` waits for it)."""
        self.proc = self._spawn()
        _RUNNING.add(self)
        return self

    def _spawn(self) -> subprocess.Popen[bytes]:
        spec = importlib.util.find_spec("prefect")
        app_dir = os.path.dirname(os.path.dirname(spec.origin)) if spec and spec.origin else "."
        env = {**os.environ, "PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1",
               "PREFECT__SERVER_FINAL": "1"}
        env.pop("PREFECT_API_URL", None)
        cmd = [sys.executable, "-m", "uvicorn", "--app-dir", app_dir, "--factory",
               "prefect.server.api.server:create_app", "--host", "127.0.0.1", "--port", str(self.port),
               "--log-level", "error", "--lifespan", "on"]
        return subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, start_new_session=True)

    def healthy(self, timeout_s: float = 2.0) -> bool:
        try:
            with urllib.request.urlopen(f"{self.api_url}/health", timeout=timeout_s) as resp:  # noqa: S310 - loopback
                return bool(resp.status == 200)
        except OSError:
            return False

    def wait_ready(self, timeout_s: float = STARTUP_TIMEOUT_S) -> str:
        """The API URL once the server answers; RuntimeError if it exits or never answers."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                code = None if self.proc is None else self.proc.returncode
                raise RuntimeError(f"the Prefect server exited while starting (exit code {code})")
            if self.healthy():
                if self._watcher is None:
                    self._watcher = threading.Thread(target=self._watch, daemon=True, name="xtract-server-watch")
                    self._watcher.start()
                return self.api_url
            time.sleep(0.1)
        raise RuntimeError(f"the Prefect server did not answer within {timeout_s:.0f}s")

    def wait_back(self, timeout_s: float = STARTUP_TIMEOUT_S) -> bool:
        """After a death, wait (at most ``timeout_s``) until the restarted server answers; True when it does.

        A run's last state updates then land in the restarted server instead of failing.
        """
        deadline = time.monotonic() + timeout_s
        while not self._stopping.is_set():
            if self.healthy(timeout_s=1.0):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.2)
        return False

    def _watch(self) -> None:
        """Start the server again when it dies before the run is done with it."""
        while not self._stopping.wait(self.poll_s):
            proc = self.proc
            if proc is not None and proc.poll() is not None and not self._stopping.is_set():
                self.restarts += 1
                self.proc = self._spawn()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Terminate the server (then kill it after ``timeout_s``); safe to call twice."""
        self._stopping.set()
        _RUNNING.discard(self)
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
