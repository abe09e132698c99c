"""Secrets never leak; offload cannot escape its root; metadata honours the umask."""

from __future__ import annotations

import asyncio
import os
import stat
import subprocess

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    FlowRunFilter,
    FlowRunFilterId,
    LogFilter,
    LogFilterFlowRunId,
)
from prefect.logging.handlers import APILogWorker
from pydantic import SecretStr

from flows.endpoint_flow import xtract_endpoint
from tasks.habitats.local_offload import offload_local, safe_join
from tasks.pools.options import ExtractionOptions
from tests.helpers import check_contract, small_corpus
from tests.reliability_plugin import run_pipeline
from xtract_blocks import GlobusCredentials, XtractEndpoint
from xtract_blocks.errors import OffloadError

SECRET = "xtract-TEST-client-secret-7f3a9c1e55d2"
TOKEN = "xtract-TEST-refresh-token-0b8e44aa"


async def everything_prefect_stored(flow_run_ids: list) -> str:
    """Logs, artifacts, flow-run parameters and states, task runs: all of it as one text."""
    async with get_client() as client:
        parts = []
        for frid in flow_run_ids:
            run = await client.read_flow_run(frid)
            parts.append(run.model_dump_json())
            offset = 0
            while logs := await client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[frid])),
                                                 limit=200, offset=offset):
                parts += [log.model_dump_json() for log in logs]
                offset += len(logs)
            assert offset > 0
            tasks = await client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[frid])))
            parts += [t.model_dump_json() for t in tasks]
            arts = await client.read_artifacts(artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[frid])))
            parts += [a.model_dump_json() for a in arts]
        return "\n".join(parts)


def tree_text(root) -> bytes:
    chunks = []
    for dirpath, _, names in os.walk(root):
        for n in names:
            with open(os.path.join(dirpath, n), "rb") as fh:
                chunks.append(fh.read())
    return b"\n".join(chunks)


@pytest.mark.slow
def test_client_secret_never_reaches_logs_artifacts_parameters_metadata_or_cli(tmp_path, xtract_bin,
                                                                               subprocess_env):
    small_corpus(tmp_path / "data")
    out = tmp_path / "out"
    creds = GlobusCredentials(client_id="11111111-2222-3333-4444-555555555555", client_secret=SecretStr(SECRET),
                              refresh_tokens={"transfer.api.globus.org": SecretStr(TOKEN)})
    ep = XtractEndpoint(dirs=[str(tmp_path / "data")], local_mdata_path=str(out), credentials=creds)
    ok = xtract_endpoint(ep, extraction=ExtractionOptions(workers=1), return_state=True)
    assert ok.is_completed(), ok.message
    bad_ep = XtractEndpoint(dirs=[str(tmp_path / "missing")], local_mdata_path=str(out), credentials=creds)
    failed = xtract_endpoint(bad_ep, extraction=ExtractionOptions(workers=1), return_state=True)
    assert failed.is_failed()
    with pytest.raises(Exception) as raised:
        failed.result()
    check_contract(out, expected_files=6)

    APILogWorker.drain_all()  # logs are shipped in the background: make sure all of them reached the API
    stored = asyncio.run(everything_prefect_stored([ok.state_details.flow_run_id,
                                                    failed.state_details.flow_run_id]))
    assert "client_secret" in stored or "credentials" in stored  # the parameter really was recorded
    cli = subprocess.run([*xtract_bin, "status", str(ok.state_details.flow_run_id), "--json"],
                         env=subprocess_env, capture_output=True, text=True, timeout=300)
    report = subprocess.run([*xtract_bin, "report", str(out)], env=subprocess_env, capture_output=True,
                            text=True, timeout=300)
    for secret in (SECRET, TOKEN):
        assert secret not in stored
        assert secret.encode() not in tree_text(out)
        assert secret not in str(raised.value) and secret not in repr(ep) and secret not in str(failed.message)
        assert secret not in cli.stdout + cli.stderr
        assert secret not in report.stdout + report.stderr
    assert cli.returncode == 0, cli.stderr[-1000:]


def test_offload_cannot_escape_its_root(tmp_path):
    src = tmp_path / "src"
    (src / "groups").mkdir(parents=True)
    (src / "groups" / "g.json").write_text("{}")
    (src / "index.parquet").write_bytes(b"PAR1")
    dest = tmp_path / "dest"
    dest.mkdir()
    (tmp_path / "outside").mkdir()
    os.symlink(tmp_path / "outside", dest / "link")
    for folder in ("..", "../outside", "/etc", "a/../../outside", "link"):
        with pytest.raises(OffloadError, match="outside"):
            offload_local({"ep": str(src)}, str(dest), folder=folder)
    for name in ("../evil", "/tmp/evil", "a/../../evil"):  # endpoint names become folders too
        with pytest.raises(OffloadError, match="outside"):
            offload_local({name: str(src), "other": str(src)}, str(dest), folder="2024-01-01-00:00:00")
    with pytest.raises(OffloadError):
        safe_join(str(dest), "x", "..", "..", "y")
    assert safe_join(str(dest), "a", "..", "b") == str(dest / "b")
    assert os.listdir(tmp_path / "outside") == []
    assert not (tmp_path / "evil").exists()
    good = offload_local({"ep": str(src)}, str(dest), folder="2024-01-01-00:00:00")
    assert os.path.isfile(os.path.join(good, "groups", "g.json"))


def test_metadata_files_honour_the_umask(tmp_path):
    small_corpus(tmp_path / "data")
    out = tmp_path / "out"
    old = os.umask(0o027)
    try:
        run_pipeline(tmp_path / "data", out, workers=1, batch=10)
    finally:
        os.umask(old)
    check_contract(out, expected_files=6)
    modes = {}
    for dirpath, dirs, names in os.walk(out):
        for n in dirs + names:
            modes[os.path.join(dirpath, n)] = stat.S_IMODE(os.lstat(os.path.join(dirpath, n)).st_mode)
    assert len(modes) > 8
    loose = {p: oct(m) for p, m in modes.items() if m & 0o027}
    assert loose == {}  # nothing group-writable, nothing visible to others
    groups = [m for p, m in modes.items() if p.endswith(".json")]
    assert groups and all(m == 0o640 for m in groups)  # 0666 & ~umask: readable by the owner's group
