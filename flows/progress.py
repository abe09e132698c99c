"""Live progress of ``xtract run`` on the terminal, fed by the stages' in-process events.

The flow runs in the CLI's own process, so the display subscribes to
``tasks.observers`` instead of parsing logs or polling the API. On a terminal it
is a ``rich`` live view (crawl: files, bytes, rate, directories pending;
extraction: a bar, groups done of total, rate, ETA, failures so far) followed by a
summary table; anywhere else it writes plain lines, a few per stage, so CI logs
and pipes stay readable. Prefect's own console lines are held back to warnings
(they still reach the Prefect API) and, while the live view is up, printed above it.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any, TextIO

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from tasks.observers import StageEvent, observing
from tasks.units import human_bytes, human_count, human_duration, human_rate

#: Prefect's console handler level while ``xtract run`` draws progress (the API handler is untouched).
CONSOLE_LOG_ENV = "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL"


def quiet_prefect_console(level: str = "WARNING") -> None:
    """Keep Prefect's INFO lines off the terminal; call before Prefect is imported. A user's setting wins.

    Also keeps off its log worker's "Error logging to API" lines (printed only while
    ``logging.raiseExceptions`` is set): ``xtract run`` reports a lost API itself, once.
    """
    os.environ.setdefault(CONSOLE_LOG_ENV, level)
    logging.raiseExceptions = False


@dataclass
class EndpointProgress:
    """What one endpoint's run has reported so far."""

    endpoint: str
    stage: str = "starting"
    crawl: dict[str, Any] = field(default_factory=dict)
    crawl_started: float | None = None
    crawl_seconds: float | None = None
    groups_total: int | None = None
    xtract_started: float | None = None
    xtract_seconds: float | None = None
    counters: dict[str, Any] = field(default_factory=dict)

    # -- derived figures, shared by both renderers ------------------------
    def crawl_elapsed(self, now: float) -> float:
        if self.crawl_seconds is not None:
            return self.crawl_seconds
        return now - self.crawl_started if self.crawl_started is not None else 0.0

    def crawl_text(self, now: float) -> str:
        c = self.crawl
        files, size = c.get("files", 0), c.get("bytes", 0)
        parts = [f"{human_count(files)} files", human_bytes(size), human_rate(files, self.crawl_elapsed(now), "files")]
        if self.crawl_seconds is None and c.get("dirs_pending") is not None:
            parts.append(f"{human_count(c['dirs_pending'])} dirs pending")
        else:
            parts.append(f"{human_count(c.get('dirs', 0))} dirs")
        if c.get("dirs_failed"):
            parts.append(f"{human_count(c['dirs_failed'])} dirs unreadable")
        parts.append(human_duration(self.crawl_elapsed(now)))
        return " · ".join(parts)

    def groups_done(self) -> int:
        c = self.counters
        return c.get("fx_success", 0) + c.get("fx_failed", 0) + c.get("groups_skipped", 0)

    def xtract_elapsed(self, now: float) -> float:
        if self.xtract_seconds is not None:
            return self.xtract_seconds
        return now - self.xtract_started if self.xtract_started is not None else 0.0

    def xtract_text(self, now: float) -> str:
        c = self.counters
        total = self.groups_total or 0
        done = self.groups_done()
        worked = c.get("fx_success", 0) + c.get("fx_failed", 0)
        elapsed = self.xtract_elapsed(now)
        pct = 100.0 * done / total if total else 100.0
        parts = [f"{human_count(done)}/{human_count(total)} groups ({pct:.0f}%)",
                 human_rate(worked, elapsed, "groups") if worked else "waiting for the first results"]
        if self.xtract_seconds is None and worked and done < total:
            parts.append(f"ETA {human_duration((total - done) * elapsed / worked)}")
        parts.append(f"{human_count(c.get('fx_failed', 0))} failed")
        if c.get("groups_skipped"):
            parts.append(f"{human_count(c['groups_skipped'])} done earlier")
        parts.append(human_duration(elapsed))
        return " · ".join(parts)


class ProgressModel:
    """Folds stage events into per-endpoint state; safe to read while the flow's thread writes."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.endpoints: dict[str, EndpointProgress] = {}

    def apply(self, ev: StageEvent) -> EndpointProgress:
        with self.lock:
            if ev.stage not in ("crawl", "xtract"):  # run- and API-level events are no stage of the view
                return self.endpoints.get(ev.endpoint) or EndpointProgress(ev.endpoint)
            ep = self.endpoints.setdefault(ev.endpoint, EndpointProgress(ev.endpoint))
            if ev.stage == "crawl":
                ep.stage = "crawl"
                if ev.phase == "start" or ep.crawl_started is None:
                    ep.crawl_started = ev.at
                if ev.phase != "start":
                    ep.crawl = {**ep.crawl, **ev.data}  # replaced, not mutated: renderers read it unlocked
                if ev.phase == "end":
                    ep.crawl_seconds = ev.data.get("seconds") or ev.at - ep.crawl_started
                    ep.stage = "group"
            elif ev.stage == "xtract":
                ep.stage = "xtract"
                if ev.phase == "start":
                    ep.xtract_started = ev.at
                    ep.groups_total = ev.data.get("groups_total", 0)
                else:
                    ep.counters = dict(ev.data)
                    ep.groups_total = ev.data.get("groups_total", ep.groups_total)
                if ev.phase == "end":
                    ep.xtract_seconds = ev.at - (ep.xtract_started or ev.at)
                    ep.stage = "finish"
            return ep


class PlainProgress:
    """Line-by-line progress for logs and pipes: each stage's end always, updates at most every ``every_s``."""

    terminal = False

    def __init__(self, stream: TextIO, *, every_s: float = 5.0) -> None:
        self.stream = stream
        self.every_s = every_s
        self.model = ProgressModel()
        self._last: dict[tuple[str, str], float] = {}

    def _write(self, ep: EndpointProgress, line: str) -> None:
        prefix = f"[{ep.endpoint}] " if len(self.model.endpoints) > 1 else ""
        self.stream.write(f"{prefix}{line}\n")
        self.stream.flush()

    def __call__(self, ev: StageEvent) -> None:
        ep = self.model.apply(ev)
        key = (ev.endpoint, ev.stage)
        throttled = ev.phase == "progress" and ev.at - self._last.get(key, float("-inf")) < self.every_s
        if throttled:
            return
        self._last[key] = ev.at
        if ev.stage == "crawl" and ev.phase == "start":
            self._write(ep, f"crawl: started on {len(ev.data.get('dirs', []))} path(s)")
        elif ev.stage == "crawl":
            self._write(ep, f"crawl: {'done: ' if ev.phase == 'end' else ''}{ep.crawl_text(ev.at)}")
        elif ev.stage == "xtract" and ev.phase == "start":
            self._write(ep, f"extract: started on {human_count(ep.groups_total or 0)} groups")
        elif ev.stage == "xtract":
            self._write(ep, f"extract: {'done: ' if ev.phase == 'end' else ''}{ep.xtract_text(ev.at)}")

    @contextmanager
    def running(self) -> Iterator[PlainProgress]:
        with observing(self):
            yield self


class RichProgress:
    """A live terminal view redrawn from the model a few times a second."""

    terminal = True

    def __init__(self, console: Console) -> None:
        self.console = console
        self.model = ProgressModel()
        self.spinner = Spinner("dots", style="cyan")
        self.started = time.monotonic()
        self.finished = False  # set when the flow returned: spinners stop in the last frame

    def __call__(self, ev: StageEvent) -> None:
        self.model.apply(ev)

    def _icon(self, done: bool) -> RenderableType:
        if done:
            return Text("✓", style="green")
        return Text("·", style="dim") if self.finished else self.spinner

    def render(self) -> RenderableType:
        now = time.monotonic()
        with self.model.lock:
            endpoints = [replace(ep) for ep in self.model.endpoints.values()]
        if not endpoints:
            grid = Table.grid(padding=(0, 1))
            grid.add_row(self._icon(False), Text(f"starting the flow run … {human_duration(now - self.started)}",
                                                 style="dim"))
            return grid
        return Group(*(self._render_endpoint(ep, now, titled=len(endpoints) > 1) for ep in endpoints))

    def _render_endpoint(self, ep: EndpointProgress, now: float, *, titled: bool) -> RenderableType:
        grid = Table.grid(padding=(0, 1))
        grid.add_column(width=1)
        grid.add_column(width=8, style="bold")
        grid.add_column(ratio=1)
        if titled:
            grid.add_row("", Text(ep.endpoint, style="bold magenta"), "")
        if ep.crawl_started is not None or ep.crawl:
            grid.add_row(self._icon(ep.crawl_seconds is not None), "crawl", ep.crawl_text(now))
        if ep.stage == "group":
            grid.add_row(self._icon(False), "group", f"grouping {human_count(ep.crawl.get('files', 0))} files …")
        elif ep.groups_total is not None:
            grid.add_row(self._icon(True), "group", f"{human_count(ep.groups_total)} groups")
        if ep.xtract_started is not None:
            total = max(ep.groups_total or 0, 1)
            done = ep.xtract_seconds is not None
            bar = ProgressBar(total=total, completed=total if done else min(ep.groups_done(), total),
                              width=max(10, min(40, self.console.width // 4)))
            text = Text(ep.xtract_text(now))
            if ep.counters.get("fx_failed"):
                text.highlight_words([f"{human_count(ep.counters['fx_failed'])} failed"], style="red")
            line = Table.grid(padding=(0, 1))
            line.add_row(bar, text)
            grid.add_row(self._icon(done), "extract", line)
        if ep.stage == "finish" and not self.finished:  # the summary printed after the view says how it ended
            grid.add_row(self._icon(False), "finish", "writing index.parquet and the report …")
        return grid

    @contextmanager
    def running(self) -> Iterator[RichProgress]:
        with Live(get_renderable=self.render, console=self.console, refresh_per_second=8, transient=False,
                  redirect_stdout=False, redirect_stderr=False) as live, \
                _prefect_console_into(live.console), observing(self):
            try:
                yield self
            finally:
                self.finished = True


class _ToConsole(logging.Handler):
    """Prints warnings above the live view instead of through it."""

    def __init__(self, console: Console) -> None:
        super().__init__(level=logging.WARNING)
        self.console = console

    def emit(self, record: logging.LogRecord) -> None:
        try:
            style = "red" if record.levelno >= logging.ERROR else "yellow"
            self.console.print(Text(f"{record.levelname.lower()}: {record.getMessage()}", style=style))
        except Exception:  # noqa: BLE001 - logging must never raise into the run
            self.handleError(record)


_muted = threading.Event()


def mute_prefect_console() -> None:
    """No more of Prefect's console lines in this process, and no printed log-delivery errors.

    Called once the Prefect API is known gone: each of Prefect's services (events, log
    delivery, the engine's last state proposal) then reports the lost connection, some with
    tracebacks, while ``xtract run`` says it once. The API handlers are untouched.
    """
    _muted.set()
    logging.raiseExceptions = False  # Prefect's log worker prints its failures only when this is set
    loggers = [logging.getLogger(), *(lg for lg in logging.root.manager.loggerDict.values()
                                     if isinstance(lg, logging.Logger))]
    for lg in loggers:
        for h in lg.handlers:
            to_terminal = isinstance(h, logging.StreamHandler) and h.stream in (sys.stderr, sys.stdout)
            if to_terminal or isinstance(h, _ToConsole):
                h.setLevel(logging.CRITICAL + 1)


@contextmanager
def _prefect_console_into(console: Console) -> Iterator[None]:
    """While the live view is up, root-logger console output goes through it (levels restored after)."""
    root = logging.getLogger()
    muted = [(h, h.level) for h in root.handlers if type(h).__name__ == "PrefectConsoleHandler"]
    for h, _ in muted:
        h.setLevel(logging.CRITICAL + 1)
    ours = _ToConsole(console)
    root.addHandler(ours)
    try:
        yield
    finally:
        root.removeHandler(ours)
        for h, level in muted:
            h.setLevel(logging.CRITICAL + 1 if _muted.is_set() else level)


Display = PlainProgress | RichProgress


def make_display(stream: TextIO | None = None, *, force_terminal: bool | None = None,
                 every_s: float = 5.0) -> Display:
    """A rich live view when ``stream`` is a terminal (or ``force_terminal``), plain lines otherwise."""
    stream = stream or sys.stdout
    console = Console(file=stream, force_terminal=force_terminal)
    if console.is_terminal and not console.is_dumb_terminal:
        return RichProgress(console)
    return PlainProgress(stream, every_s=every_s)


def summary_lines(summary: dict[str, Any]) -> list[str]:
    """The run's outcome as plain lines (non-terminal output; ``--json`` prints these before the JSON)."""
    lines = [
        f"{summary['files_crawled']} files ({summary['bytes_crawled']} bytes) in {summary['groups']} groups: "
        f"{summary['extracted']} extracted, {summary['failed']} failed, {summary['unknown']} unknown type, "
        f"{summary['skipped']} skipped (done earlier) in {summary['seconds']:.1f}s",
        f"metadata: {summary['metadata_dir']}  (flow run {summary['flow_run_id']})",
    ]
    if summary.get("dirs_failed"):
        lines.append(f"{summary['dirs_failed']} directories could not be listed (their files are not in the index; "
                     "see the crawl-errors artifact)")
    if summary.get("report"):
        lines.append(f"report: {summary['report']}")
    return lines


def summary_table(summary: dict[str, Any]) -> Table:
    """The run's outcome as a rich table for the terminal."""
    table = Table(title="xtract run", title_justify="left", show_header=False, box=None, padding=(0, 2))
    table.add_column(style="bold")
    table.add_column(justify="right")
    table.add_column(style="dim")
    files = summary["files_crawled"]
    table.add_row("files", human_count(files), f"{human_bytes(summary['bytes_crawled'])} "
                  f"in {human_count(summary['groups'])} groups")
    for key, label, style in (("extracted", "extracted", "green"), ("failed", "failed", "red"),
                              ("unknown", "unknown type", "yellow"), ("skipped", "done earlier", "blue")):
        n = summary[key]
        share = f"{100.0 * n / files:.1f}% of files" if files else ""
        table.add_row(label, Text(human_count(n), style=style if n else ""), share)
    if summary.get("dirs_failed"):
        table.add_row("unlistable dirs", Text(human_count(summary["dirs_failed"]), style="red"),
                      "see the crawl-errors artifact")
    table.add_row("wall time", human_duration(summary["seconds"]), "")
    table.add_row("metadata", "", summary["metadata_dir"])
    if summary.get("report"):
        table.add_row("report", "", summary["report"])
    table.add_row("flow run", "", str(summary["flow_run_id"]))
    return table


def print_summary(summary: dict[str, Any], display: Display | None, stream: TextIO | None = None) -> None:
    """A table after a live view, the plain lines anywhere else."""
    stream = stream or sys.stdout
    if isinstance(display, RichProgress) and display.console.file is stream:
        display.console.print(summary_table(summary))
        return
    for line in summary_lines(summary):
        print(line, file=stream)
