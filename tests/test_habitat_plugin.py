"""A habitat defined outside the project (an in-memory tree), registered through the ``xtract.habitats``
entry point, runs end to end through the flow: the protocol is all a new repo_type needs."""

from __future__ import annotations

import textwrap

import pytest

from flows.endpoint_flow import xtract_endpoint
from tasks.habitats import HABITATS, habitat_for, plugin_habitats
from tasks.pools.options import ExtractionOptions
from tests.helpers import check_contract, load_group
from xtract_blocks import XtractEndpoint
from xtract_blocks.errors import ConfigurationError

TOY_MODULE = textwrap.dedent('''
    """An in-memory repository: what a new habitat (say Google Drive) has to provide."""
    from tasks.habitats.base import CrawlStatus, RunNeeds
    from tasks.habitats.download import FetchStagingConfig, Fetched
    from tasks.store.records import FileRecord

    FILES = {
        "mem://toy/tables/t1.csv": b"a,b\\n1,2\\n3,4\\n",
        "mem://toy/tables/t2.csv": b"x,y,z\\n1,2,3\\n",
        "mem://toy/notes/readme.txt": b"metadata about a toy repository of tables\\n",
        "mem://toy/config.json": b'{"instrument": "toy", "runs": 3}',
    }


    class MemCrawler:
        def __init__(self):
            self.status = CrawlStatus()

        def iter_batches(self, dirs, *, batch_size=10_000):
            batch = []
            for path, data in sorted(FILES.items()):
                if any(path.startswith(d) for d in dirs):
                    self.status.files += 1
                    self.status.bytes += len(data)
                    ext = path.rsplit(".", 1)[-1] if "." in path.rsplit("/", 1)[-1] else ""
                    batch.append(FileRecord(path, len(data), 1.7e9, ext, "toy"))
            yield batch


    class MemFetcher:
        def fetch(self, path, local, *, mtime=None, on_bytes=None):
            with open(local, "wb") as fh:
                fh.write(FILES[path])
            return Fetched(path, local, bytes=len(FILES[path]))


    class ToyHabitat:
        repo_type = "toy"

        def validate(self, ep, needs):
            if not ep.dirs:
                raise ValueError("toy needs dirs")

        def crawler(self, ep):
            return MemCrawler()

        def staging(self, ep, needs, out, *, timeout_s):
            return FetchStagingConfig(habitat="toy", staging_dir=out.fetch_staging,
                                      fetcher_for=lambda remote: MemFetcher())

        def fetcher(self, ep, remote):
            return MemFetcher()

        def download(self, ep, items, dest, **options):
            raise NotImplementedError
''')


@pytest.fixture
def toy_plugin(tmp_path, monkeypatch):
    """An installed distribution carrying the habitat and its entry point, as `pip install` would leave it."""
    site = tmp_path / "site"
    dist = site / "toy_habitat-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-habitat\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[xtract.habitats]\ntoy = toy_habitat:ToyHabitat\n")
    (site / "toy_habitat.py").write_text(TOY_MODULE)
    monkeypatch.syspath_prepend(str(site))
    plugin_habitats.cache_clear()
    yield
    plugin_habitats.cache_clear()


def test_toy_habitat_from_an_entry_point_runs_through_the_flow(toy_plugin, tmp_path):
    ep = XtractEndpoint(repo_type="Toy", dirs=["mem://toy/"], local_mdata_path=str(tmp_path / "out"))
    assert "toy" not in HABITATS and habitat_for(ep).repo_type == "toy"
    state = xtract_endpoint(ep, extraction=ExtractionOptions(workers=1), return_state=True)
    assert state.is_completed(), state.message
    summary = state.result()
    assert summary["files_crawled"] == 4 and summary["failed"] == 0, summary
    idx = check_contract(tmp_path / "out", expected_files=4)
    assert set(idx["path"]) == {"mem://toy/tables/t1.csv", "mem://toy/tables/t2.csv", "mem://toy/notes/readme.txt",
                                "mem://toy/config.json"}
    doc = load_group(tmp_path / "out", idx, "mem://toy/tables/t1.csv")  # type: ignore[arg-type]
    assert doc["metadata"]["tabular"]["rows"] == 2 and doc["files"][0]["path"] == "mem://toy/tables/t1.csv"
    assert not list((tmp_path / "out" / ".xtract" / "fetch-staging").glob("*/*")), "staged copies are removed"


def test_unknown_repo_type_fails_before_any_work_naming_the_known_ones(tmp_path):
    ep = XtractEndpoint(repo_type="gdrive", dirs=["x"], local_mdata_path=str(tmp_path / "out"))
    with pytest.raises(ConfigurationError, match=r"repo_type 'gdrive' is not a known habitat; known: .*'local'"):
        habitat_for(ep)
    state = xtract_endpoint(ep, return_state=True)
    assert state.is_failed() and "gdrive" in str(state.message)
    assert not (tmp_path / "out" / ".xtract").exists()
