"""Values that cross from the alert state machine to the store and the notifiers.

An :class:`Event` is what a receiver is told; an :class:`Outcome` is what a
receiver answers for a delivery attempt (DECISIONS.md section 5).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Mapping, Optional, Sequence

from monagent.api import Fact, Status
from monagent.formatting import Words


@dataclass(frozen=True, order=True)
class AlertKey:
    """check instance + subject + metric (or ``status`` for a verdict, ``#unknown`` for a failing check)."""

    check: str
    subject: str = ""
    metric: str = "status"

    def __str__(self) -> str:
        return " ".join(part for part in (self.check, self.subject, self.metric) if part)

    def as_id(self) -> str:
        """A stable string form, used in the store and in message ids."""
        return f"{self.check}\x1f{self.subject}\x1f{self.metric}"

    @classmethod
    def from_id(cls, text: str) -> AlertKey:
        check, subject, metric = text.split("\x1f")
        return cls(check, subject, metric)


class EventKind(str, enum.Enum):
    FIRING = "firing"
    ESCALATED = "escalated"
    DEESCALATED = "deescalated"
    REMINDER = "reminder"
    RESOLVED = "resolved"
    OCCURRENCE = "occurrence"
    FLAP_START = "flap_start"
    FLAP_END = "flap_end"
    NOTICE = "notice"  # host rebooted, agent restarted, state reset, first-run summary


@dataclass(frozen=True)
class Event:
    """One notification-worthy thing about one alert key.

    ``id`` is unique and stable (``incident:seq``, or the occurrence id), so a
    redelivery after a crash can be recognised. Times are wall-clock seconds.
    """

    id: str
    kind: EventKind
    key: AlertKey
    severity: Status
    time: float
    host: str
    summary: str
    incident: str = ""
    check_type: str = ""
    value: Optional[float] = None
    unit: str = ""
    threshold: Optional[float] = None
    operator: str = ""
    since: Optional[float] = None
    duration: Optional[float] = None
    trend: Sequence[float] = ()
    facts: Mapping[str, Fact] = field(default_factory=dict)
    details: str = ""
    note: str = ""
    reason: Words = ""  # the check's reason by message id (a Text), or its free text; "" in entries of format 1


class OutcomeKind(str, enum.Enum):
    DELIVERED = "delivered"
    RETRY = "retry"  # transient: try again at not_before
    LOCKED_OUT = "locked_out"  # rate limited: no sends to this receiver until not_before
    REJECTED = "rejected"  # the payload is at fault: reduce it, then drop and count
    TOO_LARGE = "too_large"  # split or truncate and resend
    BROKEN = "broken"  # configuration fault: stop sending, keep queued, re-probe rarely


@dataclass(frozen=True)
class Outcome:
    kind: OutcomeKind
    reason: str = ""  # the receiver's own words (errmsg) plus what to fix; never a secret
    not_before: Optional[float] = None
    code: Optional[int] = None


@dataclass(frozen=True)
class OutboxEntry:
    """An event queued for one receiver."""

    seq: int
    receiver: str
    event: Event
    attempts: int = 0
    not_before: float = 0.0


DELIVERED = Outcome(OutcomeKind.DELIVERED)


def summarise_dropped(count: int, receiver: str) -> str:
    return f"{count} events were dropped for receiver {receiver} (outbox bound reached)"


__all__ = [
    "DELIVERED",
    "AlertKey",
    "Event",
    "EventKind",
    "OutboxEntry",
    "Outcome",
    "OutcomeKind",
    "summarise_dropped",
]
