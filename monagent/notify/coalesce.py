"""Coalescing queued outbox entries into the items of one chat message (docs/design/alerting.md d.7).

Per incident (alert key + incident id), against what the group has heard:

- a queued FIRING and a queued RESOLVED that the group never saw cancel out;
- several reminders become one;
- an escalation supersedes a queued firing (one FIRING at the new severity) and reminders;
- a resolve supersedes queued reminders and severity changes.

Every outbox entry ends up either in exactly one :class:`Item` (and is completed when that
item's message is delivered) or in ``cancelled`` (completed at once: nothing to tell).
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Dict, List, Optional, Sequence, Tuple

from monagent.api import Status
from monagent.events import Event, EventKind, OutboxEntry
from monagent.records import record

_PROBLEM_KINDS = (EventKind.FIRING, EventKind.ESCALATED, EventKind.DEESCALATED, EventKind.REMINDER)


class HeldReason(str, enum.Enum):
    """Why a batch waited longer than ``group_wait``; a held batch of several items is sent as a digest."""

    RATE_LIMIT = "rate_limit"
    LOCKOUT = "lockout"
    UNAVAILABLE = "unavailable"


@record
class Item:
    """One line or block of a message: the event to describe and every entry it stands for."""

    event: Event
    seqs: Tuple[int, ...]
    merged: int = 1  # how many events of the same kind were merged into this one (reminders)

    @property
    def is_resolved(self) -> bool:
        return self.event.kind == EventKind.RESOLVED

    @property
    def is_problem(self) -> bool:
        return self.event.kind in _PROBLEM_KINDS or self.event.kind == EventKind.OCCURRENCE


@record
class Batch:
    """What the dispatcher hands a chat receiver for one request."""

    items: Tuple[Item, ...]
    dropped: int = 0  # entries dropped earlier (outbox bound, rejected payloads), to be reported
    cancelled: int = 0  # incidents that fired and resolved unheard, cancelled (digest accounting)
    cancelled_events: int = 0  # the outbox entries of those incidents
    held: Tuple[HeldReason, ...] = ()
    held_since: float = 0.0
    reduced: bool = False  # a 430xxx retry: no links, no excerpts
    budget: int = 20_000  # bytes of request body

    @property
    def seqs(self) -> Tuple[int, ...]:
        return tuple(seq for item in self.items for seq in item.seqs)

    @property
    def digest(self) -> bool:
        return bool(self.held) and len(self.items) > 1


@record
class Coalesced:
    items: Tuple[Item, ...]
    cancelled: Tuple[int, ...]  # seqs of entries that cancelled out
    cancelled_incidents: int = 0


def priority(event: Event) -> int:
    """Lower sorts first: critical firing, crash/occurrence, critical resolve, warning firing, ..."""
    kind, severity = event.kind, event.severity
    if kind in (EventKind.FIRING, EventKind.ESCALATED) and severity == Status.CRITICAL:
        return 0
    if kind == EventKind.OCCURRENCE:
        return 1
    if kind == EventKind.RESOLVED and severity == Status.CRITICAL:
        return 2
    if kind in (EventKind.FIRING, EventKind.ESCALATED):
        return 3
    if kind == EventKind.DEESCALATED:
        return 4
    if kind == EventKind.RESOLVED:
        return 5
    if kind in (EventKind.FLAP_START, EventKind.FLAP_END):
        return 6
    if kind == EventKind.NOTICE:
        return 7
    return 8  # reminders


def coalesce(entries: Sequence[OutboxEntry]) -> Coalesced:
    """Reduce queued entries per incident; the items come back ordered by priority, then age."""
    groups: Dict[Tuple[str, str], List[OutboxEntry]] = {}
    singles: List[Item] = []
    for entry in sorted(entries, key=lambda e: e.seq):
        event = entry.event
        if event.kind in _PROBLEM_KINDS or event.kind == EventKind.RESOLVED:
            groups.setdefault((event.key.as_id(), event.incident or event.id), []).append(entry)
        else:
            singles.append(Item(event, (entry.seq,)))
    items = list(singles)
    cancelled: List[int] = []
    incidents = 0
    for group in groups.values():
        item = _reduce(group)
        if item is None:
            cancelled.extend(e.seq for e in group)
            incidents += 1
        else:
            items.append(item)
    items.sort(key=lambda i: (priority(i.event), i.event.time, min(i.seqs)))
    return Coalesced(tuple(items), tuple(cancelled), incidents)


def _reduce(group: Sequence[OutboxEntry]) -> Optional[Item]:
    seqs = tuple(e.seq for e in group)
    kinds = [e.event.kind for e in group]
    last = group[-1].event
    firing = next((e.event for e in group if e.event.kind == EventKind.FIRING), None)
    if EventKind.RESOLVED in kinds:
        if firing is not None:
            return None  # the group never heard of this incident: nothing to say
        resolved = next(e.event for e in reversed(group) if e.event.kind == EventKind.RESOLVED)
        return Item(resolved, seqs)
    if firing is not None:
        event = dataclasses.replace(last, kind=EventKind.FIRING, since=firing.since or last.since)
        return Item(event, seqs)
    changes = [e.event for e in group if e.event.kind in (EventKind.ESCALATED, EventKind.DEESCALATED)]
    if changes:
        newest = max(changes, key=lambda ev: ev.time)
        return Item(dataclasses.replace(last, kind=newest.kind), seqs)
    return Item(last, seqs, merged=len(group))
