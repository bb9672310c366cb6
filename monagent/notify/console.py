"""The console receiver: one readable line per event on stdout (the journal under systemd).

``FIRING critical web01 root_disk /var used_percent 93% (>= 90) since 10:02``

It is the default receiver when none is configured, so the shipped ``agent.toml``
shows alerts with no robot at all. Its dispatcher sends everything pending at once.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from typing import Optional, Sequence, TextIO

from monagent.events import DELIVERED, Event, EventKind, OutboxEntry, Outcome, OutcomeKind, summarise_dropped
from monagent.lazylog import get_logger
from monagent.notify.base import Outbox
from monagent.wording import ENGLISH, event_summary

log = get_logger(__name__)

LABELS = {
    EventKind.FIRING: "FIRING",
    EventKind.ESCALATED: "ESCALATED",
    EventKind.DEESCALATED: "DEESCALATED",
    EventKind.REMINDER: "REMINDER",
    EventKind.RESOLVED: "RESOLVED",
    EventKind.OCCURRENCE: "OCCURRENCE",
    EventKind.FLAP_START: "FLAPPING",
    EventKind.FLAP_END: "SETTLED",
    EventKind.NOTICE: "NOTICE",
}
RETRY_AFTER = 5.0


def format_line(event: Event) -> str:
    """One line for one event; notices and occurrences name the check and subject only."""
    label = LABELS.get(event.kind, event.kind.value.upper())
    if event.kind == EventKind.NOTICE:
        where = [event.key.check] if event.key.check != "monagent" else []
    elif event.kind == EventKind.OCCURRENCE:
        where = [event.key.check, event.key.subject]
    else:
        where = [str(event.key)]
    if event.kind == EventKind.RESOLVED:
        # "RESOLVED web01 root_disk /var used_percent 71% (was critical since 10:02)"
        parts = [label, event.host, *where, event_summary(ENGLISH, event), _was(event)]
    else:
        parts = [label, event.severity.word, event.host, *where, event_summary(ENGLISH, event)]
        if event.since is not None and event.kind not in (EventKind.NOTICE, EventKind.OCCURRENCE):
            parts.append(f"since {ENGLISH.clock(event.since)}")
    if event.note:
        parts.append(f"({event.note})")
    return " ".join(p for p in parts if p)


def _was(event: Event) -> str:
    """What a resolved alert had been, so the line cannot be read as still critical."""
    text = f"was {event.severity.word}"
    if event.since is not None:
        text += f" since {ENGLISH.clock(event.since)}"
    return f"({text})"


class ConsoleReceiver:
    """Writes each entry as one line to ``stream`` (stdout at the moment of sending by default)."""

    def __init__(self, name: str = "console", stream: Optional[TextIO] = None) -> None:
        self.name = name
        self._stream = stream

    def write(self, text: str) -> None:
        stream = self._stream or sys.stdout
        stream.write(text + "\n")
        stream.flush()

    def send(self, entries: Sequence[OutboxEntry], now: float) -> Outcome:
        try:
            for entry in entries:
                self.write(format_line(entry.event))
        except OSError as exc:  # a closed pipe or a full disk behind a redirect: try again later
            return Outcome(OutcomeKind.RETRY, f"cannot write to the console: {exc.strerror or exc}", not_before=now + RETRY_AFTER)
        return DELIVERED


class ConsoleDispatcher:
    """Sends everything pending at once and marks it complete."""

    def __init__(self, receiver: Optional[ConsoleReceiver] = None) -> None:
        self.receiver = receiver or ConsoleReceiver()
        self.receiver_name = self.receiver.name

    def pump(self, outbox: Outbox, now: float) -> None:
        name = self.receiver_name
        entries = outbox.pending(name, now)
        dropped = outbox.take_dropped_count(name)
        if dropped:
            self.receiver.write(f"NOTICE {summarise_dropped(dropped, name)}")
        if not entries:
            return
        outcome = self.receiver.send(entries, now)
        seqs = [e.seq for e in entries]
        health = outbox.health(name)
        if outcome.kind == OutcomeKind.DELIVERED:
            outbox.complete(name, seqs)
            outbox.set_health(replace(health, last_success=now, sent=health.sent + len(seqs)))
            return
        log.warning("console: %s", outcome.reason)
        outbox.defer(name, seqs, outcome.not_before or now + RETRY_AFTER)
        outbox.set_health(
            replace(
                health,
                last_error=outcome.reason,
                last_error_at=now,
                last_error_class=outcome.kind.value,
                failed=health.failed + len(seqs),
            )
        )

    def next_due(self, now: float) -> Optional[float]:
        return None

    def close(self, deadline: float) -> None:
        """Nothing is ever in flight: every send finishes before ``pump`` returns."""
