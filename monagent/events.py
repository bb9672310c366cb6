"""Values that cross between layers: from the alert state machine to the store and the notifiers,
from the notifiers to status output. (What the scheduler hands over, :class:`CheckRun`, is in
:mod:`monagent.checkrun`; it is re-exported here.)

An :class:`Event` is what a receiver
is told; an :class:`Outcome` is what a receiver answers for a delivery attempt
(docs/design/decisions.md section 5); :class:`ReceiverHealth` is what the store keeps of a receiver.
"""

from __future__ import annotations

import enum
from dataclasses import field
from typing import Mapping, NamedTuple, Optional, Sequence

from monagent.api import Fact, Status
from monagent.checkrun import CheckRun
from monagent.formatting import Words
from monagent.records import record


class AlertKey(NamedTuple):
    """check instance + subject + metric (or ``status`` for a verdict, ``#unknown`` for a failing check).

    A named tuple: the pipeline hashes and compares keys a few hundred times a cycle, and a tuple does
    that in C (a frozen dataclass's generated ``__hash__`` and ``__eq__`` are Python calls)."""

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


@record
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


@record
class Outcome:
    kind: OutcomeKind
    reason: str = ""  # the receiver's own words (errmsg) plus what to fix; never a secret
    not_before: Optional[float] = None
    code: Optional[int] = None


@record
class OutboxEntry:
    """An event queued for one receiver."""

    seq: int
    receiver: str
    event: Event
    attempts: int = 0
    not_before: float = 0.0


DELIVERED = Outcome(OutcomeKind.DELIVERED)

AGENT_CHECK = "monagent"  # the check name of the agent's own notices (host rebooted, state reset)
HOST_METRIC = "host"  # the metric of its notices about the host: how the previous boot ended


@record
class ReceiverHealth:
    """What ``monagent status`` and the metrics show for one receiver (never a secret)."""

    receiver: str
    last_success: Optional[float] = None
    last_error: str = ""
    last_error_at: Optional[float] = None
    last_error_class: str = ""  # an OutcomeKind value
    locked_until: Optional[float] = None
    broken: bool = False
    sent: int = 0
    failed: int = 0
    dropped: int = 0
    failing_since: Optional[float] = None  # the first failed attempt after the last success


def failure_streak(previous: Optional[ReceiverHealth], health: ReceiverHealth) -> Optional[float]:
    """When the current run of failed attempts began: None once the last attempt succeeded.

    ``previous`` is the health recorded before ``health``; its start is kept while the failures go on."""
    last_error = health.last_error_at
    if last_error is None or (health.last_success is not None and health.last_success >= last_error):
        return None
    for candidate in (health.failing_since, previous.failing_since if previous is not None else None):
        if candidate is not None and (health.last_success is None or candidate > health.last_success):
            return candidate
    return last_error


def summarise_dropped(count: int, receiver: str) -> str:
    return f"{count} events were dropped for receiver {receiver} (outbox bound reached)"


__all__ = [
    "AGENT_CHECK",
    "DELIVERED",
    "HOST_METRIC",
    "AlertKey",
    "CheckRun",
    "Event",
    "EventKind",
    "OutboxEntry",
    "Outcome",
    "OutcomeKind",
    "ReceiverHealth",
    "failure_streak",
    "summarise_dropped",
]
