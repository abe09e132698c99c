"""A throwaway RabbitMQ broker on a free loopback port: the real AMQP transport of the Globus Compute path.

``rabbitmq-server`` (Debian's package, installed by ``make broker`` where apt-get runs as root)
is started from ``/usr/lib/rabbitmq/bin`` with every directory (Mnesia, logs, Erlang cookie)
under a temporary base, its own node name, AMQP port, distribution port and epmd port, so it
never touches a system broker. Its epmd runs in the foreground in the broker's process group (not
as the usual detached daemon), and a guard process ends that group if this process dies without
stopping it (a test session killed by a timeout), so nothing is left running.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from contextlib import suppress

RABBIT_BIN = "/usr/lib/rabbitmq/bin/rabbitmq-server"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def guard(pgid: int) -> subprocess.Popen[bytes]:
    """A watcher that ends process group ``pgid`` once this process is gone (kill the watcher to disarm it)."""
    script = (f"while kill -0 {os.getpid()} 2>/dev/null; do sleep 1; done; "
              f"kill -TERM -{pgid} 2>/dev/null; sleep 5; kill -KILL -{pgid} 2>/dev/null")
    return subprocess.Popen(["/bin/sh", "-c", script], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)


def disarm(watcher: subprocess.Popen[bytes] | None) -> None:
    if watcher is not None and watcher.poll() is None:
        watcher.kill()
        watcher.wait()


def missing_reason() -> str | None:
    """Why no broker can be started here (None when one can)."""
    if not os.path.exists(RABBIT_BIN) or shutil.which("erl") is None:
        return ("rabbitmq-server is not installed (run `make broker` as root where apt-get exists: "
                "apt-get install rabbitmq-server)")
    return None


class RabbitBroker:
    """``with RabbitBroker(base) as b: b.url`` -- amqp://guest:guest@127.0.0.1:<port>/ until exit."""

    def __init__(self, base: str, start_timeout_s: float = 90.0) -> None:
        self.base = os.path.abspath(base)
        self.port = free_port()
        self.dist_port = free_port()
        self.epmd_port = free_port()
        self.nodename = f"xtract-{uuid.uuid4().hex[:10]}@localhost"
        self.url = f"amqp://guest:guest@127.0.0.1:{self.port}/%2F"
        self.start_timeout_s = start_timeout_s
        self.proc: subprocess.Popen[bytes] | None = None
        self.guard: subprocess.Popen[bytes] | None = None
        self.log_path = os.path.join(self.base, "server.out")

    def environ(self) -> dict[str, str]:
        b = self.base
        conf = os.path.join(b, "rabbitmq")  # rabbitmq-server appends .conf
        plugins = os.path.join(b, "enabled_plugins")
        return {**{k: v for k, v in os.environ.items() if not k.startswith("RABBITMQ_")},
                "HOME": b,  # the Erlang cookie is written here
                "RABBITMQ_NODENAME": self.nodename, "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
                "RABBITMQ_NODE_PORT": str(self.port), "RABBITMQ_DIST_PORT": str(self.dist_port),
                "ERL_EPMD_PORT": str(self.epmd_port), "ERL_EPMD_ADDRESS": "127.0.0.1",
                "RABBITMQ_BASE": b, "RABBITMQ_MNESIA_BASE": os.path.join(b, "mnesia"),
                "RABBITMQ_LOG_BASE": os.path.join(b, "log"), "RABBITMQ_CONFIG_FILE": conf,
                "RABBITMQ_ADVANCED_CONFIG_FILE": os.path.join(b, "advanced.config"),
                "RABBITMQ_CONF_ENV_FILE": os.path.join(b, "rabbitmq-env.conf"),
                "RABBITMQ_ENABLED_PLUGINS_FILE": plugins, "RABBITMQ_PLUGINS_EXPAND_DIR": os.path.join(b, "plugins"),
                "RABBITMQ_PID_FILE": os.path.join(b, "rabbit.pid"),
                "RABBITMQ_LOGS": os.path.join(b, "log", "rabbit.log")}

    def start(self) -> RabbitBroker:
        reason = missing_reason()
        if reason:
            raise RuntimeError(reason)
        os.makedirs(os.path.join(self.base, "log"), exist_ok=True)
        with open(os.path.join(self.base, "rabbitmq.conf"), "w") as fh:
            fh.write("loopback_users.guest = true\ndisk_free_limit.absolute = 10MB\n")
        with open(os.path.join(self.base, "enabled_plugins"), "w") as fh:
            fh.write("[].\n")
        open(os.path.join(self.base, "rabbitmq-env.conf"), "w").close()
        epmd = shutil.which("epmd") or "epmd"
        script = f'"{epmd}" -port {self.epmd_port} -address 127.0.0.1 & exec "{RABBIT_BIN}"'
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(["/bin/sh", "-c", script], env=self.environ(), stdout=out,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=self.base,
                                         start_new_session=True)
        self.guard = guard(self.proc.pid)
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        import pika

        deadline = time.monotonic() + self.start_timeout_s
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                break
            try:
                conn = pika.BlockingConnection(pika.URLParameters(self.url + "?connection_attempts=1"))
                conn.close()
                return
            except Exception as exc:  # noqa: BLE001 - not up yet
                last = exc
                time.sleep(0.5)
        tail = ""
        with suppress(OSError), open(self.log_path, "rb") as fh:
            tail = fh.read()[-3000:].decode(errors="replace")
        self.stop()
        raise RuntimeError(f"rabbitmq-server did not accept AMQP on port {self.port}: {last!r}\n{tail}")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            with suppress(ProcessLookupError):  # the broker and its epmd: one process group
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                with suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:  # the group outlives its leader for a moment
                try:
                    os.killpg(proc.pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.1)
            else:
                with suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
        disarm(self.guard)
        self.guard = None
        self._stop_epmd()

    def _stop_epmd(self) -> None:
        """The broker's own epmd (on our private port) daemonizes; end it by its port."""
        epmd = shutil.which("epmd")
        if epmd:
            with suppress(OSError, subprocess.SubprocessError):
                subprocess.run([epmd, "-port", str(self.epmd_port), "-kill"], env=self.environ(),
                               capture_output=True, timeout=10)

    def __enter__(self) -> RabbitBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
