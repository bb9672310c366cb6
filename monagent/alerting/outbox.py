"""The outbox as delivery sees it: the store's rows decoded into events.

The store keeps outbox entries as text it never reads (:class:`~monagent.store.OutboxRow`):
:func:`monagent.alerting.persist.outbox_row` writes that text with :mod:`monagent.alerting.codec`,
and :class:`EventOutbox`, the :class:`~monagent.notify.base.Outbox` the dispatchers pump, reads it
back with the same codec.

A row that cannot be decoded (damaged, or written by a newer monagent in a format this one does
not know) is never handed to a receiver, never removed and never fatal: it is logged once at
ERROR with its receiver and seq, left in the database (``monagent status`` counts it as queued;
a newer monagent can still deliver it; the age bound ends it, counted as dropped), and delivery
of the other entries goes on.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from typing import TYPE_CHECKING, Dict, List, Optional, Sequence, Set

from monagent.alerting.codec import event_from_json
from monagent.events import OutboxEntry, ReceiverHealth
from monagent.lazylog import get_logger

if TYPE_CHECKING:
    from monagent.store import OutboxRow, Store

log = get_logger(__name__)

NOT_DURABLE = "not durable: the state directory cannot be written"

# What a damaged or unknown row raises in event_from_json: bad JSON (ValueError), a missing field
# (KeyError), an unknown kind or severity (ValueError), a field of the wrong shape (TypeError,
# IndexError, AttributeError). A bug elsewhere is not caught here.
_UNREADABLE = (ValueError, KeyError, TypeError, IndexError, AttributeError)


class EventOutbox:
    """The store's outbox with its rows decoded: the :class:`~monagent.notify.base.Outbox` of delivery.

    Entries held in memory while the database refuses writes carry the note that they are not durable."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._unreadable: Dict[str, Set[int]] = {}  # per receiver, the seqs already logged

    def pending(self, receiver: str, now: float, limit: int = 10_000) -> Sequence[OutboxEntry]:
        rows = self.store.pending_rows(receiver, now, limit)
        entries: List[OutboxEntry] = []
        unreadable: Dict[int, str] = {}
        for row in rows:
            try:
                entries.append(self._decode(row))
            except _UNREADABLE as exc:
                unreadable[row.seq] = f"{type(exc).__name__}: {exc}"
        with self._lock:
            known = self._unreadable.get(receiver, set())
            for seq in sorted(set(unreadable) - known):
                log.error(
                    "outbox entry %d of receiver %s cannot be read (%s); it stays in %s, undelivered",
                    seq,
                    receiver,
                    unreadable[seq],
                    self.store.path,
                )
            if len(rows) < limit:  # every due row was read: a known one not among them has gone
                known = set()
            self._unreadable[receiver] = known | set(unreadable)
        return entries

    @staticmethod
    def _decode(row: OutboxRow) -> OutboxEntry:
        event = event_from_json(row.text)
        if not row.durable:
            event = replace(event, note=f"{event.note}; {NOT_DURABLE}" if event.note else NOT_DURABLE)
        return OutboxEntry(row.seq, row.receiver, event, row.attempts, row.not_before)

    def queued_count(self, receiver: str) -> int:
        """The entries delivery can still act on: an unreadable row is not one (a dispatcher waiting for
        it to go would wait for ever); ``monagent status`` counts it from the store."""
        with self._lock:
            unreadable = len(self._unreadable.get(receiver, ()))
        return max(0, self.store.queued_count(receiver) - unreadable)

    def next_not_before(self, receiver: str, now: float) -> Optional[float]:
        return self.store.next_not_before(receiver, now)

    def complete(self, receiver: str, seqs: Sequence[int]) -> None:
        self.store.complete(receiver, seqs)

    def defer(self, receiver: str, seqs: Sequence[int], not_before: float) -> None:
        self.store.defer(receiver, seqs, not_before)

    def drop(self, receiver: str, seqs: Sequence[int], reason: str) -> None:
        self.store.drop(receiver, seqs, reason)

    def take_dropped_count(self, receiver: str) -> int:
        return self.store.take_dropped_count(receiver)

    def health(self, receiver: str) -> ReceiverHealth:
        return self.store.health(receiver)

    def set_health(self, health: ReceiverHealth) -> None:
        self.store.set_health(health)


__all__ = ["NOT_DURABLE", "EventOutbox"]
