"""Numbers for people: byte sizes, counts, durations and rates in human units.

Prefect-free, so the report builder and the terminal display use the same words as
the artifacts without importing Prefect.
"""

from __future__ import annotations


def human_bytes(n: float) -> str:
    """``1536`` -> ``1.5 KB`` (binary multiples, as ``ls -h`` and ``du -h`` show them)."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PB"


def human_count(n: float) -> str:
    """``1234567`` -> ``1,234,567``: counts people can read at a glance."""
    return f"{n:,.0f}"


def human_duration(seconds: float | None) -> str:
    """``83.2`` -> ``1m 23s``; under a minute keeps one decimal."""
    if seconds is None or seconds != seconds or seconds < 0:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, sec = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes}m {sec:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def human_rate(count: float, seconds: float, unit: str) -> str:
    """``count`` per second, or ``-`` before there is anything to measure."""
    if seconds <= 0 or count <= 0:
        return "-"
    rate = count / seconds
    return f"{rate:,.0f} {unit}/s" if rate >= 10 else f"{rate:.1f} {unit}/s"
