"""The outboxes of the notifier tests: :class:`MemoryOutbox`, an in-memory
:class:`monagent.notify.base.Outbox`, and :func:`queue`, which fills the real store's outbox the way
the alert pipeline does (read it through ``monagent.alerting.outbox.EventOutbox``, as the agent does).

MemoryOutbox follows the protocol exactly: ``pending`` returns queued entries whose ``not_before``
has passed, oldest first; ``complete`` removes; ``defer`` sets ``not_before`` and increments
``attempts``; ``drop`` removes and counts; ``take_dropped_count`` returns and resets the count.
tests/test_outbox_contract.py holds it and the real store to the same contract tests.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Dict, List, Optional, Sequence

from monagent.alerting.persist import outbox_row
from monagent.events import Event, OutboxEntry, ReceiverHealth
from monagent.store import Changes, Store


class MemoryOutbox:
    def __init__(self) -> None:
        self.entries: Dict[str, Dict[int, OutboxEntry]] = {}
        self.dropped: Dict[str, int] = {}
        self.dropped_reasons: List[str] = []
        self.completed: List[int] = []
        self.healths: Dict[str, ReceiverHealth] = {}
        self._seq = 0

    def add(self, receiver: str, *events: Event) -> List[int]:
        seqs = []
        for event in events:
            self._seq += 1
            self.entries.setdefault(receiver, {})[self._seq] = OutboxEntry(self._seq, receiver, event)
            seqs.append(self._seq)
        return seqs

    def pending(self, receiver: str, now: float, limit: int = 10_000) -> Sequence[OutboxEntry]:
        queued = sorted(self.entries.get(receiver, {}).values(), key=lambda e: e.seq)
        return [e for e in queued if e.not_before <= now][:limit]

    def queued_count(self, receiver: str) -> int:
        return len(self.entries.get(receiver, {}))

    def next_not_before(self, receiver: str, now: float) -> Optional[float]:
        later = [e.not_before for e in self.entries.get(receiver, {}).values() if e.not_before > now]
        return min(later) if later else None

    def complete(self, receiver: str, seqs: Sequence[int]) -> None:
        for seq in seqs:
            if self.entries.get(receiver, {}).pop(seq, None) is not None:
                self.completed.append(seq)

    def defer(self, receiver: str, seqs: Sequence[int], not_before: float) -> None:
        queue = self.entries.get(receiver, {})
        for seq in seqs:
            if seq in queue:
                queue[seq] = replace(queue[seq], attempts=queue[seq].attempts + 1, not_before=not_before)

    def drop(self, receiver: str, seqs: Sequence[int], reason: str) -> None:
        queue = self.entries.get(receiver, {})
        gone = [seq for seq in seqs if queue.pop(seq, None) is not None]
        self.dropped[receiver] = self.dropped.get(receiver, 0) + len(gone)
        self.dropped_reasons.append(reason)

    def take_dropped_count(self, receiver: str) -> int:
        return self.dropped.pop(receiver, 0)

    def health(self, receiver: str) -> ReceiverHealth:
        return self.healths.get(receiver, ReceiverHealth(receiver))

    def set_health(self, health: ReceiverHealth) -> None:
        self.healths[health.receiver] = health


def queue(store: Store, receiver: str, *events: Event, now: Optional[float] = None) -> int:
    """Commit ``events`` for ``receiver`` to a real store's outbox as the alert pipeline does (one commit,
    each row by ``persist.outbox_row``); returns how many entries the outbox bound dropped."""
    return store.commit(Changes(outbox=[outbox_row(receiver, e) for e in events]), time.time() if now is None else now)
