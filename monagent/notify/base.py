"""The contracts between the store's outbox, the dispatchers and the receivers.

- A :class:`Receiver` turns a batch of outbox entries into one delivery attempt
  (one HTTP request, one console line per entry) and answers an :class:`Outcome`.
- A :class:`Dispatcher` decides *when* and *what* to hand its receiver: grouping,
  coalescing, rate limits and digests for chat receivers; current-state re-posting
  for Alertmanager. ``pump`` is called by the agent after every committed cycle and
  whenever ``next_due`` arrives; it runs in the delivery thread, never in the scheduler.
- The :class:`Outbox` is the store's per-receiver queue, read as events
  (``monagent.alerting.outbox.EventOutbox``). An entry leaves it only through ``complete``
  (the receiver confirmed) or ``drop`` (counted, and reported in the next message and in
  ``monagent status``).
"""

from __future__ import annotations

from typing import Optional, Protocol, Sequence

from monagent.events import OutboxEntry, Outcome, ReceiverHealth


class Receiver(Protocol):
    name: str

    def send(self, entries: Sequence[OutboxEntry], now: float) -> Outcome: ...


class Outbox(Protocol):
    """The store's side of delivery; every method commits before it returns."""

    def pending(self, receiver: str, now: float, limit: int = 10_000) -> Sequence[OutboxEntry]:
        """Queued entries of ``receiver`` whose ``not_before`` <= now, oldest first."""
        ...

    def queued_count(self, receiver: str) -> int: ...

    def next_not_before(self, receiver: str, now: float) -> Optional[float]:
        """When the earliest entry of ``receiver`` deferred past ``now`` becomes due (None: none is)."""
        ...

    def complete(self, receiver: str, seqs: Sequence[int]) -> None:
        """The receiver confirmed these: remove them."""
        ...

    def defer(self, receiver: str, seqs: Sequence[int], not_before: float) -> None:
        """Try again later; increments ``attempts``."""
        ...

    def drop(self, receiver: str, seqs: Sequence[int], reason: str) -> None:
        """Give up on these (payload rejected, obsolete); counted in ``dropped``."""
        ...

    def take_dropped_count(self, receiver: str) -> int:
        """How many were dropped (bound reached or rejected) since the last message said so; resets it."""
        ...

    def health(self, receiver: str) -> ReceiverHealth: ...

    def set_health(self, health: ReceiverHealth) -> None: ...


class Dispatcher(Protocol):
    receiver_name: str

    def pump(self, outbox: Outbox, now: float) -> None: ...

    def next_due(self, now: float) -> Optional[float]:
        """When ``pump`` should run again even without a new cycle (None: only on new entries)."""
        ...

    def close(self, deadline: float) -> None:
        """Finish an in-flight send by ``deadline`` (monotonic); used on SIGTERM."""
        ...
