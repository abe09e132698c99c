"""Counters of one extraction run, under the names xtract-sdk users know."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass
class XtractCounters:
    """The seed's counters (groups) plus per-file outcomes of this run."""

    cumu_orch_enter: int = 0
    cumu_pulled: int = 0
    cumu_scheduled: int = 0
    flagged_unknown: int = 0
    fx_pending: int = 0
    fx_success: int = 0
    fx_failed: int = 0
    groups_skipped: int = 0
    files_ok: int = 0
    files_error: int = 0
    files_unknown: int = 0
    files_skipped: int = 0
    groups_total: int = 0
    retries: int = 0
    pool_restarts: int = 0

    def seed_view(self) -> dict[str, Any]:
        return {
            "cumu_orch_enter": self.cumu_orch_enter,
            "cumu_pulled": self.cumu_pulled,
            "cumu_scheduled": self.cumu_scheduled,
            "cumu_to_schedule": self.cumu_to_schedule,
            "flagged_unknown": self.flagged_unknown,
            "fx": {"pending": self.fx_pending, "success": self.fx_success, "failed": self.fx_failed},
        }

    @property
    def cumu_to_schedule(self) -> int:
        return max(0, self.groups_total - self.groups_skipped - self.cumu_scheduled)

    @property
    def groups_done(self) -> int:
        return self.fx_success + self.fx_failed + self.groups_skipped

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "cumu_to_schedule": self.cumu_to_schedule}
