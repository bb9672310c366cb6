"""Building :class:`~monagent.events.Event` values from alert states: ids, summaries, times."""

from __future__ import annotations

from typing import Optional

from monagent import wording
from monagent.alerting.machine import AlertState
from monagent.api import Status
from monagent.events import AlertKey, Event, EventKind
from monagent.formatting import Words


def describe(key: AlertKey, state: AlertState, severity: Status, with_limit: bool = True) -> str:
    """``93% (>= 90%)`` for a value, the reason for a verdict, in English (the event's ``summary``, for logs)."""
    limit = state.threshold.limit_for(severity) if state.threshold is not None else None
    return wording.describe(
        wording.ENGLISH,
        metric=key.metric,
        value=state.value,
        unit=state.unit,
        operator=state.threshold.operator if state.threshold is not None else "",
        limit=limit,
        reason=state.reason,
        severity=severity,
        with_limit=with_limit,
    )


def alert_event(
    kind: EventKind,
    key: AlertKey,
    state: AlertState,
    *,
    incident: str,
    event_id: str,
    severity: Status,
    now: float,
    mono: float,
    host: str,
    note: str = "",
) -> Event:
    since = None if state.firing_since is None else now - (mono - state.firing_since)
    threshold = state.threshold
    limit = threshold.limit_for(severity) if threshold is not None else None
    return Event(
        id=event_id,
        kind=kind,
        key=key,
        severity=severity,
        time=now,
        host=host,
        summary=describe(key, state, severity, with_limit=kind != EventKind.RESOLVED),
        incident=incident,
        check_type=state.check_type,
        value=state.value,
        unit=state.unit,
        threshold=limit,
        operator=threshold.operator if threshold is not None and limit is not None else "",
        since=since,
        duration=None if since is None else max(0.0, now - since),
        trend=state.trend,
        facts=dict(state.facts),
        details=state.details,
        note=note,
        reason=state.reason,
    )


def notice_event(
    event_id: str,
    key: AlertKey,
    summary: str,
    *,
    now: float,
    host: str,
    severity: Status = Status.WARNING,
    since: Optional[float] = None,
    details: str = "",
    reason: Words = "",
) -> Event:
    return Event(
        id=event_id,
        kind=EventKind.NOTICE,
        key=key,
        severity=severity,
        time=now,
        host=host,
        summary=summary,
        since=since,
        details=details,
        reason=reason,
    )
