"""The report of a real run, opened in headless Chromium over the DevTools protocol.

Chromium is Debian's package (``make test`` adds it when missing); the test
talks to it with the ``websockets`` client Prefect already depends on. It checks
what a person would see: the page loads with no console error and no network
request, every chart is drawn, the table sorts, filters and links to group
documents; and it leaves a full-page screenshot in test-artifacts/.
"""

from __future__ import annotations

import base64
import json
import pathlib
import shutil
import subprocess
import time
import urllib.request
from typing import Any

import pytest
from websockets.sync.client import connect

from flows.endpoint_flow import xtract_endpoint
from tasks.pools.options import ExtractionOptions
from tests.test_report import CHART_IDS, richer_corpus
from xtract_blocks import XtractEndpoint

ARTIFACTS = pathlib.Path(__file__).resolve().parents[1] / "test-artifacts"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-default-apps", "--hide-scrollbars", "--remote-debugging-port=0"]


def chromium_binary() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("no chromium on PATH and it could not be installed here (make test adds Debian's chromium "
                "when apt-get is available and we are root)")


class DevTools:
    """A minimal Chrome DevTools protocol client: commands by id, events kept in order."""

    def __init__(self, ws_url: str) -> None:
        self.ws = connect(ws_url, max_size=None, open_timeout=30)
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    def send(self, method: str, timeout: float = 30.0, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while True:
            msg = json.loads(self.ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self.events.append(msg)

    def wait_for(self, method: str, timeout: float = 30.0) -> dict[str, Any]:
        for ev in self.events:
            if ev.get("method") == method:
                return ev
        deadline = time.monotonic() + timeout
        while True:
            msg = json.loads(self.ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            self.events.append(msg)
            if msg.get("method") == method:
                return msg

    def evaluate(self, expression: str) -> Any:
        res = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in res:
            raise RuntimeError(res["exceptionDetails"])
        return res["result"].get("value")

    def close(self) -> None:
        self.ws.close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    binary = chromium_binary()
    profile = tmp_path_factory.mktemp("chromium-profile")
    proc = subprocess.Popen([binary, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not port_file.exists() or not port_file.read_text().strip():
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"chromium did not start (exit code {proc.poll()})")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=30) as resp:  # loopback only
            pages = [t for t in json.load(resp) if t.get("type") == "page"]
        tools = DevTools(pages[0]["webSocketDebuggerUrl"])
        yield tools
        tools.close()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.mark.slow
def test_report_in_headless_chromium(tmp_path, browser):
    richer_corpus(tmp_path / "data")
    out = tmp_path / "out"
    ep = XtractEndpoint(dirs=[str(tmp_path / "data")], local_mdata_path=str(out))
    state = xtract_endpoint(ep, extraction=ExtractionOptions(workers=2), return_state=True)
    assert state.is_completed(), state.message
    page = out / "report.html"
    url = page.as_uri()

    for domain in ("Runtime", "Log", "Network", "Page"):
        browser.send(f"{domain}.enable")
    browser.send("Emulation.setDeviceMetricsOverride", width=1280, height=900, deviceScaleFactor=1, mobile=False)
    browser.send("Page.navigate", url=url)
    browser.wait_for("Page.loadEventFired")

    seen = browser.evaluate("""JSON.stringify({
        charts: [...document.querySelectorAll('figure.chart')].map(f => {
            const svg = f.querySelector('svg'), box = svg ? svg.getBoundingClientRect() : {width: 0, height: 0};
            return {id: f.id, bars: f.querySelectorAll('rect.bar').length,
                    drawn: [...f.querySelectorAll('rect.bar')].filter(r => r.getBBox().width > 0).length,
                    width: box.width, height: box.height, caption: f.querySelector('figcaption').textContent};
        }),
        rows: document.querySelectorAll('#index-table tbody tr').length,
        links: [...document.querySelectorAll('#index-table tbody a')].map(a => a.href),
        topErrors: document.querySelectorAll('#top-errors tbody tr').length,
        cards: [...document.querySelectorAll('.card b')].map(b => b.textContent),
    })""")
    seen = json.loads(seen)
    charts = {c["id"]: c for c in seen["charts"]}
    assert sorted(charts) == sorted(f"chart-{cid}" for cid in CHART_IDS)
    for cid, c in charts.items():
        assert c["bars"] > 0 and c["drawn"] == c["bars"], f"{cid} is empty: {c}"
        assert c["width"] > 200 and c["height"] > 30 and c["caption"], c
    assert charts["chart-files-by-type"]["bars"] >= 4 and charts["chart-largest-files"]["bars"] == 15
    assert seen["rows"] == 20 and seen["topErrors"] == 1 and seen["cards"][0] == "20"
    for link in seen["links"]:  # every row links to a group document that exists next to the page
        assert link.startswith(out.as_uri() + "/groups/") and pathlib.Path(link[len("file://"):]).is_file()

    # sorting: size descending on the first click, ascending on the second; the filter narrows the rows
    sizes = ("[...document.querySelectorAll('#index-table tbody tr td:nth-child(2)')]"
             ".map(td => +td.title.split(' ')[0])")
    browser.evaluate("document.querySelectorAll('#index-table th')[1].click()")
    first = browser.evaluate(f"JSON.stringify({sizes})")
    browser.evaluate("document.querySelectorAll('#index-table th')[1].click()")
    second = browser.evaluate(f"JSON.stringify({sizes})")
    assert json.loads(first) == sorted(json.loads(first), reverse=True) and json.loads(first)[0] == 300_000
    assert json.loads(second) == sorted(json.loads(second))
    shown = browser.evaluate("""(() => { const f = document.getElementById('index-filter');
        f.value = 'broken'; f.dispatchEvent(new Event('input'));
        const n = document.querySelectorAll('#index-table tbody tr').length;
        f.value = ''; f.dispatchEvent(new Event('input')); return n; })()""")
    assert shown == 1

    metrics = browser.send("Page.getLayoutMetrics")
    height = int(metrics["cssContentSize"]["height"])
    shot = browser.send("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                        clip={"x": 0, "y": 0, "width": 1280, "height": height, "scale": 1})
    ARTIFACTS.mkdir(exist_ok=True)
    png = ARTIFACTS / "report.png"
    png.write_bytes(base64.b64decode(shot["data"]))
    assert png.stat().st_size > 20_000

    errors = [e for e in browser.events if e.get("method") == "Runtime.exceptionThrown"
              or (e.get("method") == "Runtime.consoleAPICalled" and e["params"]["type"] in ("error", "assert"))
              or (e.get("method") == "Log.entryAdded" and e["params"]["entry"]["level"] == "error")]
    assert not errors, errors
    requests = [e["params"]["request"]["url"] for e in browser.events if e.get("method") == "Network.requestWillBeSent"]
    assert requests and all(u == url for u in requests), f"the page fetched something: {requests}"
