"""Logging for the agent and the commands: one format, the journal's when under systemd."""

from __future__ import annotations

import logging
import os
import sys

QUIET_LOGGERS = ("urllib3",)  # libraries whose debug lines quote secrets (request URLs)


def setup_logging(level: str = "info") -> None:
    under_systemd = bool(os.environ.get("JOURNAL_STREAM") or os.environ.get("INVOCATION_ID"))
    fmt = "%(levelname)s %(name)s: %(message)s" if under_systemd else "%(asctime)s %(levelname)s %(name)s: %(message)s"
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO), format=fmt, stream=sys.stderr, force=True)
    # urllib3 logs every request line at debug, query string included: a DingTalk webhook's
    # access_token and signature would land in the journal with --log-level debug.
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLogger().level))


__all__ = ["QUIET_LOGGERS", "setup_logging"]
