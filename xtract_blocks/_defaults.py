"""Prefect settings for offline use, applied before Prefect is first imported.

A fresh machine's first ephemeral-server start (database migrations) takes longer
than Prefect's 20 s default, and the server's telemetry would try to reach the
internet. Users' own environment settings win (setdefault).
"""

from __future__ import annotations

import os

OFFLINE_DEFAULTS = {
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
}

for _key, _value in OFFLINE_DEFAULTS.items():
    os.environ.setdefault(_key, _value)
