"""The blocks as Prefect sees them: registration, save/load, secrets masked."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import entry_points

from pydantic import SecretStr

from xtract_blocks import GlobusCredentials, XtractEndpoint


def test_prefect_block_register_module(subprocess_env):
    proc = subprocess.run([sys.executable, "-m", "prefect", "block", "register", "-m", "xtract_blocks"],
                          capture_output=True, text=True, env=subprocess_env, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Xtract Endpoint" in proc.stdout and "Globus Credentials" in proc.stdout


def test_collections_entry_point_names_the_blocks_module():
    eps = {ep.name: ep.value for ep in entry_points(group="prefect.collections")}
    assert eps.get("prefect_xtract") == "xtract_blocks"


def test_endpoint_block_round_trip_keeps_seed_fields_and_masks_secret():
    creds = GlobusCredentials(client_id="cid", client_secret=SecretStr("s3cr3t-value"))
    ep = XtractEndpoint(repo_type="local", globus_ep_id=None, dirs="/data", grouper="directory",
                        local_mdata_path="/tmp/meta", funcx_ep_id="fx-1", credentials=creds)
    ep.save("test-endpoint-roundtrip", overwrite=True)
    loaded = XtractEndpoint.load("test-endpoint-roundtrip")
    assert loaded.dirs == ["/data"] and loaded.grouper == "directory" and loaded.funcx_ep_id == "fx-1"
    assert loaded.credentials.client_secret.get_secret_value() == "s3cr3t-value"
    assert "s3cr3t-value" not in repr(loaded) and "s3cr3t-value" not in loaded.model_dump_json()
    assert loaded.slug() == "test-endpoint-roundtrip"
