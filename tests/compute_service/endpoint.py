"""A real ``globus-compute-endpoint`` process, configured for the loopback service and broker.

The endpoint is installed in a virtual environment of its own (``.venv-endpoint``, made by
``make endpoint``), as on a compute node: it has the endpoint package and the extractors'
libraries, and ``extractors`` is put on its workers' ``PYTHONPATH`` through a directory holding
only that package (neither Prefect nor ``tasks``/``flows`` can be imported there).

``globus-compute-endpoint configure`` makes the endpoint directory under a private
``GLOBUS_COMPUTE_USER_DIR``; we then write:

- ``config.yaml`` (the core, template-capable endpoint): ``environment: local`` (the loopback
  web service), no identity mapping (the user endpoints run as the endpoint's own user);
- ``user_config_template.yaml.j2``: the engine (``ProcessPoolEngine``, worker processes that
  run each task in their main thread) and the container choice (``container_type``,
  ``container_uri``: there is no container runtime here, so the template records the image in
  the user endpoint's ``endpoint_setup`` log instead of wrapping the workers);
- ``user_config_schema.json``: what a submission's ``user_endpoint_config`` may hold;
- ``user_environment.yaml``: the user endpoints' environment (the core clears it as root).

The process authenticates with ``GLOBUS_COMPUTE_CLIENT_ID``/``_SECRET`` against the loopback
Auth service, registers, consumes its command queue, and starts one user endpoint process per
distinct ``user_endpoint_config``, as the real service asks it to.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from contextlib import suppress
from typing import Any

from tests.compute_service.broker import disarm, guard

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ENDPOINT_VENV = os.path.join(REPO, ".venv-endpoint")
ENDPOINT_BIN = os.path.join(ENDPOINT_VENV, "bin", "globus-compute-endpoint")
EXTRACTORS_DIR = os.path.join(REPO, "extractors")

TEMPLATE = """\
heartbeat_period: 5
idle_heartbeats_soft: 720
idle_heartbeats_hard: 5760
{%- if container_uri is defined %}
endpoint_setup: echo {{ container_type }} {{ container_uri }} >> {{ setup_log }}
{%- endif %}
engine:
  type: ProcessPoolEngine
  max_workers: {{ workers | default(WORKERS) }}
"""

SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "properties": {
        "container_type": {"enum": ["apptainer", "singularity", "docker", "podman"]},
        "container_uri": {"type": "string", "pattern": "^[A-Za-z0-9_./:@-]+$"},
        "workers": {"type": "integer", "minimum": 1, "maximum": 8},
    },
    "additionalProperties": False,
}


def missing_reason() -> str | None:
    if not os.path.exists(ENDPOINT_BIN):
        return f"globus-compute-endpoint is not installed in {ENDPOINT_VENV} (run `make endpoint`)"
    return None


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (by /proc parent links)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                stat = fh.read().decode(errors="replace")
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out, stack = [], [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            out.append(child)
            stack.append(child)
    return out


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


class EndpointProcess:
    """``with EndpointProcess(base, environ, client_id, secret) as ep: ep.endpoint_id``."""

    def __init__(self, base: str, environ: dict[str, str], client_id: str, client_secret: str, *,
                 name: str = "xtract-loopback", workers: int = 2) -> None:
        self.base = os.path.abspath(base)
        self.user_dir = os.path.join(self.base, "gc")
        self.ep_dir = os.path.join(self.user_dir, name)
        self.site_dir = os.path.join(self.base, "site")
        self.setup_log = os.path.join(self.base, "endpoint_setup.log")
        self.name = name
        self.workers = workers
        self.environ = {"PATH": f"{os.path.join(ENDPOINT_VENV, 'bin')}:/usr/local/bin:/usr/bin:/bin",
                        "HOME": os.path.join(self.base, "home"), "LANG": "C.UTF-8",
                        "GLOBUS_COMPUTE_USER_DIR": self.user_dir,
                        "GLOBUS_COMPUTE_CLIENT_ID": client_id, "GLOBUS_COMPUTE_CLIENT_SECRET": client_secret,
                        **environ}
        self.proc: subprocess.Popen[bytes] | None = None
        self.guard: subprocess.Popen[bytes] | None = None
        self.endpoint_id: str | None = None
        self.out_path = os.path.join(self.base, "endpoint.out")

    # -- set-up ----------------------------------------------------------------
    def configure(self) -> None:
        os.makedirs(self.environ["HOME"], exist_ok=True)
        os.makedirs(self.site_dir, exist_ok=True)
        link = os.path.join(self.site_dir, "extractors")
        if not os.path.islink(link):
            os.symlink(EXTRACTORS_DIR, link)
        subprocess.run([ENDPOINT_BIN, "configure", "--contact-email", "xtract@example.org", self.name],
                       env=self.environ, cwd=self.base, check=True, capture_output=True, timeout=120)
        with open(os.path.join(self.ep_dir, "config.yaml"), "w") as fh:
            fh.write("display_name: xtract loopback\nemail: xtract@example.org\nenvironment: local\n"
                     "public: false\nheartbeat_period: 5\n")
        template = TEMPLATE.replace("WORKERS", str(self.workers)).replace("{{ setup_log }}", self.setup_log)
        with open(os.path.join(self.ep_dir, "user_config_template.yaml.j2"), "w") as fh:
            fh.write(template)
        with open(os.path.join(self.ep_dir, "user_config_schema.json"), "w") as fh:
            json.dump(SCHEMA, fh)
        uep_env = {"GLOBUS_COMPUTE_USER_DIR": os.path.join(self.base, "uep"), "PYTHONPATH": self.site_dir,
                   "PYTHONDONTWRITEBYTECODE": "1", "LANG": "C.UTF-8"}
        with open(os.path.join(self.ep_dir, "user_environment.yaml"), "w") as fh:
            fh.write("".join(f"{k}: {json.dumps(v)}\n" for k, v in uep_env.items()))

    # -- life cycle ------------------------------------------------------------
    def start(self, timeout_s: float = 120.0, *, clear_pid_file: bool = False) -> EndpointProcess:
        """Start (or, after a crash, restart) the endpoint; it re-registers under the id in endpoint.json.

        After a crash the endpoint refuses to start for three heartbeats ("Another instance of this
        endpoint is running ... remove the PID file"); ``clear_pid_file`` does what that message says.
        """
        if not os.path.exists(os.path.join(self.ep_dir, "config.yaml")):
            self.configure()
        if clear_pid_file:
            with suppress(FileNotFoundError):
                os.unlink(os.path.join(self.ep_dir, "daemon.pid"))
        with open(self.out_path, "ab") as out:
            self.proc = subprocess.Popen([ENDPOINT_BIN, "start", self.name], env=self.environ, cwd=self.base,
                                         stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        self.guard = guard(self.proc.pid)  # user endpoints exit when the core endpoint is gone
        deadline = time.monotonic() + timeout_s
        ep_json = os.path.join(self.ep_dir, "endpoint.json")
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"globus-compute-endpoint exited with {self.proc.returncode}:\n{self.tail()}")
            with suppress(OSError, ValueError):
                with open(ep_json) as fh:
                    self.endpoint_id = json.load(fh)["endpoint_id"]
                return self
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"globus-compute-endpoint did not register within {timeout_s} s:\n{self.tail()}")

    def user_endpoints(self) -> list[int]:
        """Pids of the running user endpoint processes (children of the core endpoint)."""
        if self.proc is None:
            return []
        return [p for p in descendants(self.proc.pid) if "_start-user-endpoint" in cmdline(p)
                or "Endpoint (" in cmdline(p)]

    def kill_user_endpoints(self, sig: int = signal.SIGKILL) -> list[int]:
        """Signal every user endpoint process and its workers (SIGKILL: the host loses them; SIGSTOP: they hang)."""
        if self.proc is None:
            return []
        victims = descendants(self.proc.pid)
        for pid in victims:
            with suppress(ProcessLookupError):
                os.kill(pid, sig)
        return victims

    def crash(self) -> list[int]:
        """SIGKILL the core endpoint and every process below it (the host loses the whole endpoint)."""
        proc, self.proc = self.proc, None
        if proc is None:
            return []
        victims = [proc.pid, *descendants(proc.pid)]
        for pid in victims:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        proc.wait()
        disarm(self.guard)
        self.guard = None
        return victims

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        below = descendants(proc.pid)
        if proc.poll() is None:
            with suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        for pid in below:  # user endpoints run in sessions of their own
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        disarm(self.guard)
        self.guard = None

    def tail(self, n: int = 4000) -> str:
        texts = []
        for path in (self.out_path, os.path.join(self.ep_dir, "endpoint.log")):
            with suppress(OSError), open(path, "rb") as fh:
                texts.append(f"--- {path}\n" + fh.read()[-n:].decode(errors="replace"))
        return "\n".join(texts)

    def core_log(self) -> str:
        try:
            with open(os.path.join(self.ep_dir, "endpoint.log"), "rb") as fh:
                return fh.read().decode(errors="replace")
        except OSError:
            return ""

    def uep_logs(self) -> dict[str, str]:
        out: dict[str, Any] = {}
        root = os.path.join(self.base, "uep")
        for dirpath, _dirs, files in os.walk(root):
            for f in files:
                if f.endswith(".log"):
                    with open(os.path.join(dirpath, f), "rb") as fh:
                        out[os.path.join(dirpath, f)] = fh.read().decode(errors="replace")
        return out

    def __enter__(self) -> EndpointProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
