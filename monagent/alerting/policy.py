"""The notification policy (docs/design/alerting.md d.6): what each receiver should be told.

Pure: it compares the key's confirmed state with what each receiver has heard
(``heard``, per alert key and receiver) and answers which event kinds to enqueue
for whom, and the new ``heard``. A receiver hears a FIRING only when its route
takes the current severity; a receiver that heard the incident hears every
follow-up (escalation, de-escalation, reminder, resolve). A RESOLVED goes only
to a receiver that heard the FIRING of that incident.
"""

from __future__ import annotations

import enum
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from monagent.alerting.config import AlertingOverrides
from monagent.alerting.machine import AlertState, Phase
from monagent.alerting.route import Recipient, Route
from monagent.api import Status
from monagent.events import AlertKey, EventKind
from monagent.records import record


class HeardKind(str, enum.Enum):
    FIRING = "firing"
    RESOLVED = "resolved"


@record
class Heard:
    """The last thing one receiver was told about one key."""

    kind: HeardKind
    incident: str
    severity: Status

    def firing(self, incident: Optional[str] = None) -> bool:
        return self.kind == HeardKind.FIRING and (incident is None or self.incident == incident)


@record
class Decision:
    heard: Mapping[str, Heard]
    sends: Tuple[Tuple[str, EventKind], ...]  # (receiver, kind)
    clear_ack: bool = False


def reconcile(
    key: AlertKey,
    state: AlertState,
    heard: Mapping[str, Heard],
    recipients: Sequence[Recipient],
    params: AlertingOverrides,
    *,
    acked_severity: Optional[Status] = None,
    after_suppression: bool = False,
) -> Decision:
    """Bring every receiver's ``heard`` in line with the confirmed state; called when nothing mutes the key."""
    new: Dict[str, Heard] = dict(heard)
    sends: List[Tuple[str, EventKind]] = []
    clear_ack = False
    names = {r.name for r in recipients}
    for recipient in recipients:
        kind = _decide(key, state, heard.get(recipient.name), recipient.route, _Policy(params, acked_severity, after_suppression))
        if kind is None:
            continue
        if kind == EventKind.ESCALATED and acked_severity is not None and state.severity > acked_severity:
            clear_ack = True
        if state.phase.open:
            new[recipient.name] = Heard(HeardKind.FIRING, state.incident, state.severity)
        else:
            before = heard[recipient.name]
            new[recipient.name] = Heard(HeardKind.RESOLVED, before.incident, before.severity)
        if kind != _SILENT:
            sends.append((recipient.name, kind))
    for name in heard:  # a receiver removed from the config forgets what it heard
        if name not in names:
            new.pop(name, None)
    return Decision(new, tuple(sends), clear_ack)


_SILENT = EventKind.NOTICE  # marker: update heard without sending


@record
class _Policy:
    params: AlertingOverrides
    acked: Optional[Status]
    after_suppression: bool


def _decide(key: AlertKey, state: AlertState, heard: Optional[Heard], route: Route, policy: _Policy) -> Optional[EventKind]:
    if state.phase.open:
        if heard is not None and heard.firing(state.incident):
            if state.severity > heard.severity:
                return EventKind.ESCALATED
            if state.severity < heard.severity:
                quiet = not policy.params.notify_deescalation or policy.acked is not None
                return _SILENT if quiet else EventKind.DEESCALATED
            return None
        return EventKind.FIRING if route.matches(key.check, state.severity) else None
    if heard is not None and heard.firing():
        if policy.after_suppression and not policy.params.resolve_after_suppression:
            return _SILENT
        return EventKind.RESOLVED
    return None


def reminder_due(state: AlertState, mono: float, params: AlertingOverrides) -> bool:
    """FIRING (not RESOLVING), interval set and passed, cap not reached (d.4); mutes are the caller's.
    True exactly from :func:`reminder_at` on (one formula: a tick at that instant is never 1 ulp early)."""
    at = reminder_at(state, params)
    return at is not None and mono >= at


def reminder_at(state: AlertState, params: AlertingOverrides) -> Optional[float]:
    """When a reminder falls due for this state (monotonic): the last notification (or the start of
    firing) plus the severity's repeat interval; None while FIRING is not the phase, no interval is
    set, or the cap is reached."""
    interval = params.repeat_interval(state.severity)
    if state.phase != Phase.FIRING or interval <= 0 or state.reminders_sent >= params.max_reminders:
        return None
    last = state.firing_since if state.last_notified_at is None else state.last_notified_at
    return None if last is None else last + interval


def reminder_recipients(state: AlertState, heard: Mapping[str, Heard]) -> Tuple[str, ...]:
    return tuple(sorted(name for name, h in heard.items() if h.firing(state.incident)))


def notice_recipients(
    check: str, severity: Status, recipients: Sequence[Recipient], heard: Mapping[str, Heard]
) -> Tuple[str, ...]:
    """Flap notices, occurrences and host notices: the routes that take them, plus whoever heard the incident."""
    return tuple(r.name for r in recipients if r.route.matches(check, severity) or (r.name in heard and heard[r.name].firing()))
