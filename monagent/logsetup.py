"""Logging for the agent and the commands: journald priority prefixes when stderr is the
journal, no timestamp under systemd, a timestamp otherwise."""

from __future__ import annotations

import logging
import os
import sys
from typing import Mapping, Optional

QUIET_LOGGERS = ("urllib3",)  # libraries whose debug lines quote secrets (request URLs)

# sd-daemon(3): a "<N>" prefix on each line gives journald the syslog priority of that line.
SYSLOG_PRIORITY = ((logging.CRITICAL, 2), (logging.ERROR, 3), (logging.WARNING, 4), (logging.INFO, 6))


def syslog_priority(levelno: int) -> int:
    """2 crit, 3 err, 4 warning, 6 info, 7 debug; a custom level takes the next standard one below it."""
    return next((priority for level, priority in SYSLOG_PRIORITY if levelno >= level), 7)


def stderr_is_journal(environ: Optional[Mapping[str, str]] = None) -> bool:
    """True when stderr is the journal's stream socket: ``$JOURNAL_STREAM`` is ``DEVICE:INODE`` of it
    (systemd.exec(5)); a stderr redirected elsewhere by the service does not match."""
    value = (os.environ if environ is None else environ).get("JOURNAL_STREAM", "")
    device, _, inode = value.partition(":")
    try:
        info = os.fstat(sys.stderr.fileno())
        return (info.st_dev, info.st_ino) == (int(device), int(inode))
    except (ValueError, OSError, AttributeError):
        return False


class JournalFormatter(logging.Formatter):
    """Every line (a traceback's too) starts with ``<N>``, the record's syslog priority; no timestamp."""

    def __init__(self) -> None:
        super().__init__("%(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        prefix = f"<{syslog_priority(record.levelno)}>"
        return "\n".join(prefix + line for line in super().format(record).split("\n"))


def setup_logging(level: str = "info") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if stderr_is_journal():
        handler.setFormatter(JournalFormatter())
    elif os.environ.get("INVOCATION_ID"):  # under systemd with stderr elsewhere: its logger adds the time
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO), handlers=[handler], force=True)
    # urllib3 logs every request line at debug, query string included: a DingTalk webhook's
    # access_token and signature would land in the journal with --log-level debug.
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLogger().level))


__all__ = ["QUIET_LOGGERS", "JournalFormatter", "setup_logging", "stderr_is_journal", "syslog_priority"]
