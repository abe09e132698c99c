"""Status as Prefect artifacts: a live progress bar, counter tables, a summary, the report.

Artifact keys must be lowercase letters, digits and dashes; ``artifact_key``
makes any endpoint name safe. Artifacts are best-effort: a failure to publish
status is logged and never fails the extraction. Tables are written for people
reading the Prefect UI: human units beside the raw numbers (which API readers such
as ``flows.client_status`` parse, so they stay integers), sorted, and capped with
an "and N more" row. The same numbers go to in-process observers
(``tasks.observers``) so ``xtract run`` can draw them on the terminal.
"""

from __future__ import annotations

import base64
import contextvars
import dataclasses
import threading
import time
from collections.abc import Callable
from typing import Any

from prefect import get_run_logger
from prefect.artifacts import (
    create_image_artifact,
    create_link_artifact,
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)

from tasks.artifacts import CHART, CRAWL_ERRORS, CRAWL_STATUS, PROGRESS, REPORT, SUMMARY, XTRACT_COUNTERS, artifact_key
from tasks.counters import XtractCounters
from tasks.habitats.base import CrawlStatus
from tasks.observers import notify
from tasks.results import RunSummary
from tasks.units import human_bytes, human_count, human_duration, human_rate

#: Longest table an artifact shows; the rest is summarised in one "and N more" row.
MAX_TABLE_ROWS = 50

COUNTER_MEANINGS = {
    "cumu_orch_enter": "groups read from the group spool",
    "cumu_pulled": "groups that needed extraction (not done earlier)",
    "cumu_scheduled": "groups submitted to the executor",
    "cumu_to_schedule": "groups still waiting to be submitted",
    "flagged_unknown": "groups whose every file has an unknown type",
    "fx.pending": "groups in flight on workers",
    "fx.success": "groups extracted with no file error",
    "fx.failed": "groups with at least one file error",
    "groups_skipped": "groups done by an earlier run (same fingerprint)",
    "files_ok": "files extracted",
    "files_error": "files whose extraction failed",
    "files_unknown": "files of unknown type (physical metadata only)",
    "files_skipped": "files in skipped groups",
    "retries": "batches split and resubmitted after a failure",
    "pool_restarts": "times the worker pool was restarted",
}


def cap_rows(rows: list[dict[str, Any]], total: int | None = None, *, limit: int = MAX_TABLE_ROWS,
             label_key: str = "path") -> list[dict[str, Any]]:
    """At most ``limit`` rows, then one row saying how many more there are (``total`` counts all)."""
    total = len(rows) if total is None else max(total, len(rows))
    shown = [dict(r) for r in rows[:limit]]
    if total > len(shown):
        filler: dict[str, Any] = {k: "" for k in (rows[0] if rows else {label_key: ""})}
        filler[label_key] = f"... and {human_count(total - len(shown))} more"
        shown.append(filler)
    return shown


_failures = 0
_failures_lock = threading.Lock()


def _count_failure(n: int = 1) -> None:
    global _failures
    with _failures_lock:
        _failures += n


def publish_failures() -> int:
    """Status updates of this process that never reached the Prefect API (failed or dropped)."""
    return _failures


#: A publish slower than this (or one that failed to connect) makes the API suspect: the next ones probe it first.
SUSPECT_AFTER_S = 5.0
#: Seconds a probe may take; a down API then costs each artifact this, not the client's minutes of retries.
PROBE_TIMEOUT_S = 2.0
_suspect = threading.Event()


def unreachable_api_error(exc: BaseException) -> bool:
    """An error (anywhere in its chain) that says the API did not answer at all."""
    import httpx  # Prefect's HTTP client: imported with prefect already

    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, (httpx.TransportError, ConnectionError, TimeoutError)):
            return True
        cur = cur.__cause__ or cur.__context__
    return False


def api_answers(url: str | None = None, timeout_s: float = PROBE_TIMEOUT_S) -> bool:
    """Whether the Prefect API (``url``, default the configured one) answers at all now (any HTTP reply
    counts); False on refusal or timeout."""
    import urllib.error
    import urllib.request

    from prefect.settings import PREFECT_API_URL

    url = url or PREFECT_API_URL.value()
    if not url:
        return True  # no API configured: nothing to probe (Prefect would start its own)
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/health", timeout=timeout_s):  # noqa: S310 - the API
            return True
    except urllib.error.HTTPError:
        return True  # it answered
    except (OSError, ValueError):
        return False


#: Seconds the end-of-run probe waits for an answer: a refused connection fails at once, a busy server gets time.
SETTLE_PROBE_TIMEOUT_S = 5.0
#: Set once an outage was reported (cleared when the API answers again): one warning per outage, not per update.
_reported = threading.Event()


def note_unreachable() -> None:
    """The API did not answer a probe: later publishes probe first; said once per outage.

    In-process observers get an ``api``/``progress`` event (``xtract run`` then keeps Prefect's
    own reports of the lost connection, one per service and retry, off the terminal and says it
    once at the end); the run's log gets one warning.
    """
    _suspect.set()
    if _reported.is_set():
        return
    _reported.set()
    notify("api", "", "progress", reachable=False)
    get_run_logger().warning("the Prefect API does not answer: status updates are skipped while it is away; "
                             "the extraction goes on")


def _note_answering() -> None:
    _suspect.clear()
    _reported.clear()


def stop_api_retries() -> None:
    """Every later Prefect API request of this process gets one attempt, and logs stay local.

    Prefect's client retries a failed request 5 times, 2 to 32 s apart (about a minute per
    request, more with jitter), reading ``PREFECT_CLIENT_MAX_RETRIES`` at each attempt. Once the
    API is known gone that only delays the end of the run: the flow engine's final state
    proposal would wait out the full schedule before failing anyway. Both the settings this
    thread sees and the process-wide ones (read by Prefect's service threads) are changed.
    """
    from prefect import context
    from prefect.settings import get_current_settings

    for settings in {id(s): s for s in (get_current_settings(), context.GLOBAL_SETTINGS_CONTEXT.settings)}.values():
        settings.client.max_retries = 0
        settings.logging.to_api.enabled = False


def settle_status(slug: str) -> bool:
    """At a run's end, before the engine proposes its final state: True when the API answers.

    When it does not (a server gone mid-run and still away), the run's status is lost
    whatever happens next: this says so once (an observer event ``api``/``end`` for the CLI,
    a warning in the run's log for everyone else), counts it, and stops the client's
    retries so the final state proposal fails within seconds instead of minutes.
    """
    if api_answers(timeout_s=SETTLE_PROBE_TIMEOUT_S):
        return True
    _suspect.set()
    _count_failure()
    notify("api", slug, "end", reachable=False)
    stop_api_retries()
    get_run_logger().warning("the Prefect API does not answer: the final state of this run cannot be reported "
                             "(its metadata is complete)")
    return False


def publish_safely(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Publish one artifact; a failure is logged and counted, never raised.

    Once a publish has hung or failed to connect, each later one first probes the API with a
    short timeout and is skipped while it does not answer: a server gone mid-run then costs
    the remaining stages seconds, not the client's minutes of retries per artifact.
    """
    if _suspect.is_set():
        if not api_answers():
            _count_failure()
            note_unreachable()
            return None
        _note_answering()
    started = time.monotonic()
    try:
        result = fn(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - status must never fail the run
        _count_failure()
        if unreachable_api_error(exc):
            note_unreachable()
        else:
            get_run_logger().warning("could not publish artifact: %s", exc)
        return None
    if time.monotonic() - started > SUSPECT_AFTER_S:
        _suspect.set()
    return result


class BackgroundPublisher:
    """Publishes status on a thread of its own, keeping only the newest update.

    The Prefect API is never on the extraction's critical path: a slow or vanished server
    (whose client retries a connection for minutes) delays only this thread, the extraction
    loop hands over its newest figures and goes on. Updates that arrive while one is being
    sent replace each other (only the latest matters); those never sent are counted as
    dropped. Runs in a copy of the caller's context, so the artifacts still belong to its
    task run.
    """

    def __init__(self, name: str = "xtract-status") -> None:
        self._context = contextvars.copy_context()
        self._cond = threading.Condition()
        self._pending: Callable[[], None] | None = None
        self._busy = False
        self._busy_since = 0.0
        self._closed = False
        self._probing = False
        self._thread = threading.Thread(target=self._loop, daemon=True, name=name)
        self._thread.start()

    def submit(self, job: Callable[[], None]) -> None:
        """Queue ``job``, replacing one queued and not yet started (it is counted as dropped)."""
        with self._cond:
            if self._closed:
                return
            if self._busy and time.monotonic() - self._busy_since > SUSPECT_AFTER_S:
                _suspect.set()  # the API has kept this thread for a while: other publishers probe first
                if not self._probing:  # is it slow or gone? asked on a thread of its own, never the caller's
                    self._probing = True
                    threading.Thread(target=self._context.copy().run, args=(self._probe,), daemon=True,
                                     name=f"{self._thread.name}-probe").start()
            self._pending = job  # one still queued is superseded: the newer update carries its figures
            self._cond.notify()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while self._pending is None and not self._closed:
                    self._cond.wait()
                job, self._pending = self._pending, None
                if job is None:
                    return
                self._busy = True
                self._busy_since = time.monotonic()
            try:
                self._context.run(job)
            except Exception:  # noqa: BLE001 - status must never fail the run (publish_safely logs)
                _count_failure()
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _probe(self) -> None:
        """While this thread's request hangs in the client's retries, find out whether the API is gone."""
        try:
            if not api_answers():
                note_unreachable()
        finally:
            with self._cond:
                self._probing = False

    def wait_idle(self, timeout_s: float) -> bool:
        """Wait at most ``timeout_s`` for everything queued to be sent; True when it was."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while (self._pending is not None or self._busy) and time.monotonic() < deadline:
                self._cond.wait(max(0.0, deadline - time.monotonic()))
            return self._pending is None and not self._busy

    def close(self, timeout_s: float = 10.0) -> bool:
        """Send what is queued, waiting at most ``timeout_s``; False (and counted) when it could not finish."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while (self._pending is not None or self._busy) and time.monotonic() < deadline:
                self._cond.wait(max(0.0, deadline - time.monotonic()))
            unfinished = self._pending is not None or self._busy
            if unfinished:
                _count_failure()
                _suspect.set()  # the API kept this thread waiting: the next publishes probe it first
            self._pending = None
            self._closed = True
            self._cond.notify_all()
        return not unfinished


def progress_text(counters: XtractCounters, elapsed_s: float) -> str:
    """One line for the progress artifact: done of total, rate, ETA, failures so far."""
    total = counters.groups_total
    done = counters.groups_done
    worked = counters.fx_success + counters.fx_failed
    parts = [f"{human_count(done)} of {human_count(total)} groups"]
    if worked and elapsed_s > 0:
        rate = worked / elapsed_s
        parts.append(human_rate(worked, elapsed_s, "groups"))
        if done < total:
            parts.append(f"ETA {human_duration((total - done) / rate)}")
    parts.append(f"{human_count(counters.fx_failed)} failed")
    if counters.groups_skipped:
        parts.append(f"{human_count(counters.groups_skipped)} done earlier")
    return " · ".join(parts)


class ProgressReporter:
    """Moves the progress artifact and republishes the counter table while a run goes on.

    It is the xtract stage's ``on_progress`` callback, so it also forwards every
    update to in-process observers (the terminal display of ``xtract run``).
    """

    def __init__(self, slug: str, total_groups: int, *, table_every_s: float = 15.0) -> None:
        self.slug = slug
        self.total = max(total_groups, 1)
        self.table_every_s = table_every_s
        self.started = time.monotonic()
        self._last_table = self.started
        #: the newest counters whose table is due, taken by whichever publisher job runs next
        self._table: XtractCounters | None = None
        self._table_lock = threading.Lock()
        notify("xtract", slug, "start", groups_total=total_groups)
        self.artifact_id: Any = None
        # every API call happens on this thread: the extraction loop never waits for the Prefect API
        self._publisher = BackgroundPublisher(f"xtract-status-{slug}")
        self._publisher.submit(lambda: self._send(0.0, f"Groups extracted or skipped of {human_count(total_groups)} "
                                                       f"for {slug}", None))

    def _send(self, pct: float, description: str, counters: XtractCounters | None) -> None:
        """On the publisher thread: create the progress artifact once, move it, and the table when due."""
        if self.artifact_id is None:
            self.artifact_id = publish_safely(create_progress_artifact, progress=pct,
                                              key=artifact_key(self.slug, PROGRESS), description=description)
        else:
            publish_safely(update_progress_artifact, artifact_id=self.artifact_id, progress=pct,
                           description=description)
        with self._table_lock:
            table, self._table = self._table, None
        if table is not None:
            _publish_counter_table(self.slug, table)

    def __call__(self, counters: XtractCounters) -> None:
        notify("xtract", self.slug, "progress", **counters.as_dict())
        pct = min(100.0, 100.0 * counters.groups_done / self.total)
        now = time.monotonic()
        snapshot = dataclasses.replace(counters)  # the loop goes on changing its own
        if now - self._last_table >= self.table_every_s or self._table is not None:
            self._last_table = now
            with self._table_lock:
                self._table = snapshot
        description = f"{self.slug}: {progress_text(snapshot, now - self.started)}"
        self._publisher.submit(lambda: self._send(pct, description, snapshot))

    def finish(self, counters: XtractCounters, *, timeout_s: float = 10.0) -> None:
        """The final figures and counter table, then stop: waits at most ``timeout_s`` for the API.

        A publisher still busy after a second is asked about first: when the API does not
        answer a probe, its thread is in the client's retries against a server that is gone,
        and waiting the rest of ``timeout_s`` would change nothing.
        """
        self._last_table = float("-inf")  # the final table is always published
        self(counters)
        notify("xtract", self.slug, "end", **counters.as_dict())
        started = time.monotonic()
        done = self._publisher.wait_idle(min(1.0, timeout_s))
        if not done:
            if api_answers():
                done = self._publisher.wait_idle(max(0.0, timeout_s - (time.monotonic() - started)))
            else:
                note_unreachable()
        if not self._publisher.close(0.0) and not _reported.is_set():  # nothing comes after the final figures
            get_run_logger().warning("the Prefect API did not take the final progress of %s within %.0fs: "
                                     "status not reported", self.slug, time.monotonic() - started)


def counter_rows(counters: XtractCounters) -> list[dict[str, Any]]:
    """The counter table: the seed's names first, then this run's file outcomes (values stay ints)."""
    seed = counters.seed_view()
    values = [(k, v) for k, v in seed.items() if k != "fx"]
    values += [(f"fx.{k}", v) for k, v in seed["fx"].items()]
    values += [(k, getattr(counters, k)) for k in ("groups_skipped", "files_ok", "files_error", "files_unknown",
                                                   "files_skipped", "retries", "pool_restarts")]
    return [{"counter": k, "value": int(v), "shown": human_count(v), "meaning": COUNTER_MEANINGS.get(k, "")}
            for k, v in values]


def _publish_counter_table(slug: str, counters: XtractCounters) -> None:
    publish_safely(create_table_artifact, table=counter_rows(counters), key=artifact_key(slug, XTRACT_COUNTERS),
                   description=f"Xtract counters for {slug}")


def publish_counters(slug: str, counters: XtractCounters) -> None:
    """The xtract stage's final counters: the table artifact, and the stage's end for observers."""
    notify("xtract", slug, "end", **counters.as_dict())
    _publish_counter_table(slug, counters)


def crawl_status_row(crawl_id: str, crawl: dict[str, Any], groups: int) -> dict[str, Any]:
    """The crawl-status row: the seed's fields (raw integers) plus the same figures in human units."""
    failed = crawl.get("dirs_failed", 0)
    seconds = float(crawl.get("seconds", 0.0) or 0.0)
    return {
        "crawl_id": crawl_id,
        "status": "complete",
        "message": "OK" if not failed else f"{human_count(failed)} directories could not be listed",
        "files_crawled": crawl["files"],
        "size": human_bytes(crawl["bytes"]),
        "groups_crawled": groups,
        "dirs": crawl.get("dirs", 0),
        "excluded": crawl.get("excluded", 0),
        "duration": human_duration(seconds),
        "rate": human_rate(crawl["files"], seconds, "files"),
        "bytes_crawled": crawl["bytes"],
        "seconds": round(seconds, 2),
    }


def publish_crawl_status(slug: str, crawl_id: str, crawl: CrawlStatus, groups: int) -> None:
    publish_safely(create_table_artifact, table=[crawl_status_row(crawl_id, vars(crawl), groups)],
                   key=artifact_key(slug, CRAWL_STATUS), description=f"Crawl status for {slug}")
    if crawl.errors:
        errs = sorted(crawl.errors, key=lambda e: e["path"])
        shown = cap_rows(errs, total=crawl.dirs_failed or len(errs))
        publish_safely(create_table_artifact, table=shown, key=artifact_key(slug, CRAWL_ERRORS),
                       description=f"Directories of {slug} that could not be listed (sorted by path)")


def extractor_table(by_extractor: dict[str, dict[str, int]], *, limit: int = 25) -> list[str]:
    """Markdown rows of files per extractor and outcome, busiest first, capped with "and N more"."""
    lines = ["| extractor | ok | error | unknown | skipped | total |", "|---|---:|---:|---:|---:|---:|"]
    ranked = sorted(by_extractor.items(), key=lambda kv: (-sum(kv[1].values()), kv[0]))
    for name, c in ranked[:limit]:
        lines.append(f"| {name} | {human_count(c.get('ok', 0))} | {human_count(c.get('error', 0))} | "
                     f"{human_count(c.get('unknown', 0))} | {human_count(c.get('skipped', 0))} | "
                     f"{human_count(sum(c.values()))} |")
    if len(ranked) > limit:
        rest = ranked[limit:]
        lines.append(f"| ... and {len(rest)} more | | | | | {human_count(sum(sum(c.values()) for _, c in rest))} |")
    return lines


def publish_summary(slug: str, run: RunSummary, by_extractor: dict[str, dict[str, int]]) -> None:
    summary = run.as_dict()
    lines = [
        f"# Xtract summary: {slug}",
        "",
        f"- metadata directory: `{summary['metadata_dir']}`",
        f"- files crawled: **{human_count(summary['files_crawled'])}** ({human_bytes(summary['bytes_crawled'])}) "
        f"in {human_count(summary['groups'])} groups",
        f"- extracted: **{human_count(summary['extracted'])}**, failed: **{human_count(summary['failed'])}**, "
        f"unknown type: **{human_count(summary['unknown'])}**, "
        f"skipped (done earlier): **{human_count(summary['skipped'])}**",
        f"- wall time: {human_duration(summary['seconds'])}",
    ]
    if summary.get("report"):
        lines.append(f"- report: `{summary['report']}` (`xtract report {summary['metadata_dir']}` rebuilds it)")
    lines += ["", *extractor_table(by_extractor)]
    publish_safely(create_markdown_artifact, markdown="\n".join(lines), key=artifact_key(slug, SUMMARY),
                   description=f"Xtract summary for {slug}")


def svg_data_uri(svg: str) -> str:
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode("utf-8")).decode("ascii")


def publish_report(slug: str, html_path: str, charts: dict[str, str]) -> None:
    """A link artifact to the HTML report and one image artifact per headline chart (inline SVG)."""
    publish_safely(create_link_artifact, link=f"file://{html_path}", link_text=f"Xtract report for {slug}",
                   key=artifact_key(slug, REPORT),
                   description=f"Self-contained HTML report of {slug} (open from the machine that ran it)")
    for name, svg in charts.items():
        publish_safely(create_image_artifact, image_url=svg_data_uri(svg), key=artifact_key(slug, CHART, name),
                       description=f"{name.replace('-', ' ')} of {slug}")
