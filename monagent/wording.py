"""What an alert says, in one language: the phrases every output shares.

The console line, the DingTalk card, the webhook text, the Alertmanager annotations and
``monagent status`` all describe a value, a threshold or a reason through these functions and a
:class:`~monagent.formatting.Formatter`, so they cannot drift apart. An event stored by an older
monagent (format 1) has prose in ``summary`` and no ``reason``: it is shown as it was written.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from monagent.api import Fact, Status
from monagent.formatting import Formatter, Text, Words

if TYPE_CHECKING:  # `monagent check` words results, never events: it does not load them (#17)
    from monagent.events import Event

UNKNOWN_METRIC = "#unknown"
STATUS_METRIC = "status"
ENGLISH = Formatter("en")


FACT_SPECS = {
    "dump_size": "bytes",
    "free_space": "bytes",
    "free": "bytes",
    "anon_rss": "bytes",
    "total_vm": "bytes",
    "file_rss": "bytes",
    "shmem_rss": "bytes",
    "rss": "bytes",
    "boot_time": "time",
    "last_seen_alive": "time",
    "time_to_full": "duration",
    "uptime": "duration",
    "down_for": "duration",
    "total": "bytes",
    "swap_total": "bytes",
    "trend": "%/h",
}
"""How a typed fact is shown (a template field spec, monagent.formatting); other facts as they are."""


def fact_text(fmt: Formatter, name: str, value: Fact) -> str:
    """One fact in ``fmt``'s language: sizes in binary units, times in the zone, yes/no for flags."""
    if isinstance(value, bool):
        return fmt.say("yes" if value else "no")
    if isinstance(value, (int, float)):
        return fmt.field(value, FACT_SPECS.get(name, "num"))
    return str(value)


def severity_word(fmt: Formatter, severity: Status) -> str:
    """``CRITICAL``/``严重``; UNKNOWN reads as UNKNOWN, not as a warning."""
    return fmt.say(severity.label)


def reason_text(fmt: Formatter, reason: Words) -> str:
    return fmt.text(reason)


def value_text(fmt: Formatter, value: Optional[float], unit: str) -> str:
    return fmt.value(value, unit)


def limit_text(fmt: Formatter, operator: str, limit: Optional[float], unit: str) -> str:
    """``>= 95%``; empty without a limit."""
    return fmt.threshold(operator, limit, unit)


def describe(
    fmt: Formatter,
    *,
    metric: str,
    value: Optional[float],
    unit: str,
    operator: str = "",
    limit: Optional[float] = None,
    reason: Words = "",
    severity: Status = Status.OK,
    with_limit: bool = True,
) -> str:
    """``93.5% (>= 90%)`` for a value, the reason for a verdict, ``check is failing: ...`` for a failing check."""
    said = fmt.text(reason)
    if metric == UNKNOWN_METRIC:
        return fmt.say("check.failing", reason=said) if said else fmt.say("check.failing_bare")
    if value is None:
        return said or severity_word(fmt, severity).lower()
    text = fmt.value(value, unit)
    if with_limit and limit is not None:
        text = fmt.say("value.with_threshold", value=text, op=operator or ">=", limit=fmt.value(limit, unit))
    return text


def event_summary(fmt: Formatter, event: Event, with_limit: Optional[bool] = None) -> str:
    """What an :class:`~monagent.events.Event` says about its key, in ``fmt``'s language.

    A format-1 event (no ``reason``, prose ``summary``) and events whose text is the summary itself
    (notices, occurrences) keep their summary."""
    from monagent.events import EventKind

    if event.kind in (EventKind.NOTICE, EventKind.OCCURRENCE, EventKind.FLAP_START, EventKind.FLAP_END):
        return fmt.text(event.reason) if isinstance(event.reason, Text) else event.summary
    if not event.reason and event.summary and (event.value is None or event.key.metric == UNKNOWN_METRIC):
        return event.summary  # a verdict or a failing check of format 1: the prose as it was stored
    if with_limit is None:
        with_limit = event.kind != EventKind.RESOLVED
    return describe(
        fmt,
        metric=event.key.metric,
        value=event.value,
        unit=event.unit,
        operator=event.operator,
        limit=event.threshold,
        reason=event.reason,
        severity=event.severity,
        with_limit=with_limit,
    )


__all__ = [
    "ENGLISH",
    "FACT_SPECS",
    "describe",
    "event_summary",
    "fact_text",
    "limit_text",
    "reason_text",
    "severity_word",
    "value_text",
]
