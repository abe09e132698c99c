"""Live progress of ``xtract run``: the observer hook, the terminal view, the plain lines, the CLI."""

from __future__ import annotations

import io
import json
import logging
import os
import pty
import re
import select
import subprocess
import time

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
from rich.console import Console

from flows.endpoint_flow import xtract_endpoint
from flows.progress import PlainProgress, RichProgress, make_display, print_summary, summary_lines
from tasks.observers import StageEvent, notify, observing, subscribe
from tasks.pools.options import ExtractionOptions
from tests.helpers import check_contract, small_corpus
from xtract_blocks import XtractEndpoint

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def feed_run(endpoint: str = "ep") -> None:
    """The events one endpoint's run sends, through the real registry, as the stages send them."""
    notify("crawl", endpoint, "start", dirs=["/data"])
    notify("crawl", endpoint, "progress", files=10_000, bytes=3 * 1024**3, dirs=120, dirs_failed=0, dirs_pending=37)
    notify("crawl", endpoint, "end", files=25_000, bytes=8 * 1024**3, dirs=400, dirs_failed=2, dirs_pending=0,
           seconds=2.5)
    notify("xtract", endpoint, "start", groups_total=200)
    notify("xtract", endpoint, "progress", groups_total=200, fx_success=80, fx_failed=3, groups_skipped=17,
           fx_pending=20)


def test_notify_reaches_subscribers_and_survives_a_broken_one():
    seen: list[StageEvent] = []

    def broken(event: StageEvent) -> None:
        raise RuntimeError("display crashed")

    stop = subscribe(broken)
    try:
        with observing(seen.append):
            notify("crawl", "ep", "progress", files=3)
        notify("crawl", "ep", "progress", files=4)  # after the block: not delivered
    finally:
        stop()
    assert [(e.stage, e.endpoint, e.phase, e.data["files"]) for e in seen] == [("crawl", "ep", "progress", 3)]


def test_make_display_picks_rich_on_a_terminal_and_plain_lines_elsewhere():
    assert isinstance(make_display(io.StringIO()), PlainProgress)
    assert isinstance(make_display(io.StringIO(), force_terminal=True), RichProgress)


def test_plain_mode_writes_readable_lines_and_throttles_updates():
    out = io.StringIO()
    with PlainProgress(out, every_s=0.0).running():
        feed_run()
        notify("xtract", "ep", "end", groups_total=200, fx_success=177, fx_failed=6, groups_skipped=17)
    lines = out.getvalue().splitlines()
    assert lines[0] == "crawl: started on 1 path(s)"
    assert re.fullmatch(r"crawl: 10,000 files · 3\.0 GB · [\d,.]+ files/s · 37 dirs pending · [\d.]+s", lines[1])
    assert lines[2] == "crawl: done: 25,000 files · 8.0 GB · 10,000 files/s · 400 dirs · 2 dirs unreadable · 2.5s"
    assert lines[3] == "extract: started on 200 groups"
    assert re.fullmatch(r"extract: 100/200 groups \(50%\) · [\d.,]+ groups/s · ETA [\dms. ]+ · 3 failed · "
                        r"17 done earlier · [\d.]+s", lines[4]), lines[4]
    assert lines[5].startswith("extract: done: 200/200 groups (100%)") and "6 failed" in lines[5]
    assert "ETA" not in lines[5] and not ANSI.search(out.getvalue())

    quiet = io.StringIO()
    with PlainProgress(quiet, every_s=3600).running():
        feed_run()
    # updates within every_s of the stage's last line are dropped; starts and ends always print
    assert [ln.split(":")[0] for ln in quiet.getvalue().splitlines()] == ["crawl", "crawl", "extract"]
    assert "done:" in quiet.getvalue().splitlines()[1]


def test_terminal_mode_draws_bars_rates_and_eta():
    buf = io.StringIO()
    display = RichProgress(Console(file=buf, force_terminal=True, width=120, color_system="truecolor"))
    with observing(display):
        feed_run()
    frame = io.StringIO()
    Console(file=frame, force_terminal=True, width=120).print(display.render())
    text = ANSI.sub("", frame.getvalue())
    assert "crawl" in text and "25,000 files · 8.0 GB" in text and "2 dirs unreadable" in text
    assert "extract" in text and "100/200 groups (50%)" in text and "ETA" in text and "3 failed" in text
    assert "━" in text  # the bar
    assert "\x1b[" in frame.getvalue()  # colours on a terminal

    with display.running():
        notify("xtract", "ep", "end", groups_total=200, fx_success=180, fx_failed=3, groups_skipped=17)
    final = ANSI.sub("", buf.getvalue())
    assert "200/200 groups (100%)" in final and "✓" in final


def test_warnings_print_above_the_live_view_and_console_levels_come_back():
    root = logging.getLogger()
    before = [(h, h.level) for h in root.handlers]
    buf = io.StringIO()
    display = RichProgress(Console(file=buf, force_terminal=True, width=100))
    with display.running():
        logging.getLogger("tasks.crawl").warning("could not list /data/locked")
        logging.getLogger("tasks.crawl").info("routine line")
    text = ANSI.sub("", buf.getvalue())
    assert "warning: could not list /data/locked" in text and "routine line" not in text
    assert [(h, h.level) for h in root.handlers] == before


def test_summary_is_a_table_after_a_live_view_and_plain_lines_otherwise():
    summary = {"files_crawled": 1200, "bytes_crawled": 5 * 1024**2, "groups": 1100, "extracted": 1000, "failed": 12,
               "unknown": 188, "skipped": 0, "seconds": 75.0, "metadata_dir": "/m", "flow_run_id": "abc",
               "report": "/m/report.html"}
    buf = io.StringIO()
    display = RichProgress(Console(file=buf, force_terminal=True, width=100))
    print_summary(summary, display, buf)
    table = ANSI.sub("", buf.getvalue())
    assert re.search(r"extracted\s+1,000\s+83\.3% of files", table) and "1m 15s" in table and "/m/report.html" in table
    plain = io.StringIO()
    print_summary(summary, PlainProgress(plain), plain)
    assert plain.getvalue().splitlines() == summary_lines(summary)
    assert summary_lines(summary)[0].startswith("1200 files (5242880 bytes) in 1100 groups: 1000 extracted")


def test_the_flow_stages_notify_observers(tmp_path):
    small_corpus(tmp_path / "data")
    out = io.StringIO()
    display = PlainProgress(out, every_s=0.0)
    ep = XtractEndpoint(dirs=[str(tmp_path / "data")], local_mdata_path=str(tmp_path / "out"))
    with display.running():
        state = xtract_endpoint(ep, extraction=ExtractionOptions(workers=2), return_state=True)
    assert state.is_completed(), state.message
    text = out.getvalue()
    assert "crawl: started on 1 path(s)" in text
    assert re.search(r"crawl: done: 6 files · 2\.3 KB · .* · 3 dirs · ", text), text
    assert "extract: started on 6 groups" in text
    assert re.search(r"extract: done: 6/6 groups \(100%\) · .* · 1 failed", text), text
    progress = display.model.endpoints[ep.slug()]
    assert progress.counters["fx_success"] == 5 and progress.crawl["files"] == 6


def read_log_messages(flow_run_id: str) -> list[str]:
    with get_client(sync_client=True) as client:
        logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
    return [log.message for log in logs]


@pytest.mark.slow
def test_cli_non_terminal_json_quiet_and_logs_still_reach_the_api(tmp_path, xtract_bin, subprocess_env):
    small_corpus(tmp_path / "data")
    out = tmp_path / "out"
    argv = [*xtract_bin, "run", str(tmp_path / "data"), "-o", str(out), "--workers", "2"]
    proc = subprocess.run([*argv, "--json"], capture_output=True, text=True, env=subprocess_env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["files_crawled"] == 6
    assert "crawl: done: 6 files" in proc.stderr and "extract: done: 6/6 groups" in proc.stderr
    assert not re.search(r"crawl:|extract:", proc.stdout), "with --json, progress stays off stdout"
    assert " | INFO " not in proc.stdout + proc.stderr, "Prefect's INFO lines must not reach the terminal"
    assert f"report: {out / 'report.html'}" in proc.stdout
    check_contract(out, expected_files=6)
    messages = read_log_messages(summary["flow_run_id"])
    assert any(m.startswith("crawled 6 files") for m in messages), messages  # still in the Prefect API

    again = subprocess.run([*argv, "--quiet"], capture_output=True, text=True, env=subprocess_env, timeout=300)
    assert again.returncode == 0, again.stderr
    assert not re.search(r"crawl:|extract:", again.stdout + again.stderr)
    # the broken table failed before, so it is retried (and fails again): failures are never "skipped"
    assert again.stdout.startswith("6 files (2307 bytes) in 6 groups: 0 extracted, 1 failed, 0 unknown type, "
                                   "5 skipped")


def run_in_pty(argv: list[str], env: dict[str, str], timeout: float = 300) -> tuple[int, str]:
    """Run a command with a pseudo-terminal as stdout/stderr (a real terminal, not a flag); returns its output."""
    leader, follower = pty.openpty()
    os.set_inheritable(follower, True)
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=follower, stderr=follower,
                            env={**env, "COLUMNS": "110", "TERM": "xterm-256color"}, close_fds=True)
    os.close(follower)
    chunks, deadline = [], time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 0.5)
            if ready:
                try:
                    data = os.read(leader, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not data:
                    break
                chunks.append(data)
            elif proc.poll() is not None:
                break
        code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(leader)
    return code, b"".join(chunks).decode("utf-8", "replace")


@pytest.mark.slow
def test_cli_in_a_terminal_shows_the_live_view_and_a_summary_table(tmp_path, xtract_bin, subprocess_env):
    small_corpus(tmp_path / "data")
    code, raw = run_in_pty([*xtract_bin, "run", str(tmp_path / "data"), "-o", str(tmp_path / "out"),
                            "--workers", "2"], subprocess_env)
    text = ANSI.sub("", raw)
    assert code == 0, text[-2000:]
    assert "\x1b[" in raw, "a terminal gets colours and cursor movement"
    assert re.search(r"✓ crawl\s+6 files · 2\.3 KB", text), text[-2000:]
    assert re.search(r"✓ extract\s+━+ 6/6 groups \(100%\)", text), text[-2000:]
    assert re.search(r"extracted\s+\d+\s+[\d.]+% of files", text) and "report" in text
    assert " | INFO " not in text, "Prefect's INFO lines must not reach the terminal"
