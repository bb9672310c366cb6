"""What every chat receiver shares: its pacing (:class:`Delivery`) and the scrubbing of
secrets out of text that may quote its URL (requests' exception messages do)."""

from __future__ import annotations

import re

from monagent.confread import redact
from monagent.records import config_record

DINGTALK_BODY_LIMIT = 20_000  # bytes of UTF-8 request body, enforced by DingTalk


@config_record
class Delivery:
    """Pacing shared by every chat receiver (DingTalk robot or webhook)."""

    max_sends_per_minute: int = 18
    group_wait: float = 10.0
    lockout: float = 600.0
    body_budget: int = DINGTALK_BODY_LIMIT
    retry_initial: float = 5.0
    retry_max: float = 300.0
    reprobe_interval: float = 1800.0


_SENSITIVE = re.compile(r"(access_token=|sign=)([^&\s'\"]+)")
_QUERY = re.compile(r"\?[^\s'\")]+")
_USERINFO = re.compile(r"//[^/\s@'\"]+@")


def scrub(text: str) -> str:
    """Remove DingTalk tokens and signatures from text that may quote a robot's URL."""
    return _SENSITIVE.sub(lambda m: m.group(1) + redact(m.group(2)), text)


def scrub_url(text: str) -> str:
    """Text that may quote a webhook URL, without its query string or user:password (either may be a secret)."""
    return _USERINFO.sub("//…(redacted)@", _QUERY.sub("?…(redacted)", scrub(text)))


__all__ = ["DINGTALK_BODY_LIMIT", "Delivery", "scrub", "scrub_url"]
