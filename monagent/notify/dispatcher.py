"""The dispatcher of a chat receiver (DingTalk robot, generic webhook): when and what to send.

``pump(outbox, now)`` runs in the delivery thread. It waits ``group_wait`` after the outbox
goes from empty to non-empty, coalesces the queued entries (:mod:`monagent.notify.coalesce`),
and hands them to the receiver as **one** message, paced by a sliding window per robot.
While the window is full, a lockout runs or the receiver is unreachable, entries keep
queueing; the next message is then a digest of all of them. An entry leaves the outbox
only when the receiver confirmed the message that carried it (at-least-once).

Outcomes (docs/design/decisions.md section 5): DELIVERED completes; RETRY defers with exponential
backoff and jitter; LOCKED_OUT stops every send for the lockout; REJECTED retries once in a
reduced form, then drops and counts; TOO_LARGE halves the body budget and resends; BROKEN
stops sending, keeps everything queued and re-probes rarely (and on reload).
"""

from __future__ import annotations

import dataclasses
import threading
import time
from typing import Callable, Optional, Protocol, Sequence, Set

from monagent.events import Outcome, OutcomeKind, ReceiverHealth
from monagent.lazylog import get_logger
from monagent.notify.base import Outbox
from monagent.notify.coalesce import Batch, HeldReason, coalesce
from monagent.notify.delivery import Delivery
from monagent.notify.ratelimit import Backoff, SlidingWindow

log = get_logger(__name__)

MIN_BUDGET = 2000
MAX_TRIES_PER_PUMP = 3


class ChatReceiver(Protocol):
    name: str

    def deliver(self, batch: Batch, now: float) -> Outcome: ...

    def close(self) -> None: ...


class ChatDispatcher:
    """Implements :class:`monagent.notify.base.Dispatcher` for one chat receiver."""

    def __init__(
        self,
        receiver: ChatReceiver,
        delivery: Delivery,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        rand: Optional[Callable[[], float]] = None,
        window: Optional[SlidingWindow] = None,
    ) -> None:
        self.receiver_name = receiver.name
        self.receiver = receiver
        self.delivery = delivery
        self._mono = monotonic
        self._window = window or SlidingWindow(delivery.max_sends_per_minute)
        self._backoff = Backoff(delivery.retry_initial, delivery.retry_max, rand)
        self._idle = True
        self._wait_until = 0.0
        self._retry_until = 0.0
        self._locked_until = 0.0
        self._deferred_until = 0.0  # every queued entry is deferred (an earlier run's retry) until then
        self._probe_at: Optional[float] = None  # set while the receiver is broken
        self._held: Set[HeldReason] = set()
        self._reduced_next = False
        self._budget = delivery.body_budget
        self._dropped = 0  # taken from the outbox, not yet reported in a delivered message
        self._cancelled = 0
        self._cancelled_events = 0
        self._health: Optional[ReceiverHealth] = None
        self._closing = False
        self._not_sending = threading.Event()
        self._not_sending.set()

    # ------------------------------------------------------------ Dispatcher protocol
    def pump(self, outbox: Outbox, now: float) -> None:
        for _ in range(MAX_TRIES_PER_PUMP):
            if not self._pump_once(outbox, now):
                return

    def next_due(self, now: float) -> Optional[float]:
        if self._idle:
            return None
        mono = self._mono()
        due = max(self._wait_until, self._retry_until, self._locked_until, self._deferred_until)
        if self._probe_at is not None:
            due = max(due, self._probe_at)
        if HeldReason.RATE_LIMIT in self._held or not self._window.allows(mono):
            due = max(due, self._window.next_free(mono))
        return now + max(0.0, due - mono)

    def close(self, deadline: float) -> None:
        self._closing = True
        self._not_sending.wait(max(0.0, deadline - time.monotonic()))
        self.receiver.close()

    def reprobe(self) -> None:
        """On reload: try a broken receiver again at the next pump."""
        if self._probe_at is not None:
            self._probe_at = self._mono()

    @property
    def broken(self) -> bool:
        return self._probe_at is not None

    # ------------------------------------------------------------ one send
    def _pump_once(self, outbox: Outbox, now: float) -> bool:
        """One decision and at most one send; True when another send may follow at once."""
        if self._closing:
            return False
        mono = self._mono()
        self._restore(outbox, now, mono)
        entries = outbox.pending(self.receiver_name, now)
        if not entries:
            self._idle = outbox.queued_count(self.receiver_name) == 0  # deferred entries are not "empty"
            later = None if self._idle else outbox.next_not_before(self.receiver_name, now)
            # Deferred by a retry before a restart: pump again when the first falls due, not at once.
            self._deferred_until = mono + (later - now) if later is not None else 0.0
            return False
        self._deferred_until = 0.0
        if self._idle:
            self._idle = False
            self._wait_until = mono + self.delivery.group_wait
        if not self._may_send(mono):
            return False
        plan = coalesce(entries)
        if plan.cancelled:
            outbox.complete(self.receiver_name, plan.cancelled)
            self._cancelled += plan.cancelled_incidents
            self._cancelled_events += len(plan.cancelled)
            log.info(
                "%s: %d alerts fired and resolved before the group heard of them; not sent",
                self.receiver_name,
                plan.cancelled_incidents,
            )
        if not plan.items:
            return True
        self._dropped += outbox.take_dropped_count(self.receiver_name)
        batch = Batch(
            plan.items,
            dropped=self._dropped,
            cancelled=self._cancelled,
            cancelled_events=self._cancelled_events,
            held=tuple(sorted(self._held, key=lambda h: h.value)),
            held_since=min(e.event.time for e in entries),
            reduced=self._reduced_next,
            budget=self._budget,
        )
        outcome = self._send(batch, now)
        return self._handle(outbox, batch, outcome, now, mono)

    def _may_send(self, mono: float) -> bool:
        if mono < self._wait_until:
            return False
        if self._probe_at is not None and mono < self._probe_at:
            return False
        if mono < self._locked_until:
            self._held.add(HeldReason.LOCKOUT)
            return False
        if mono < self._retry_until:
            return False
        if not self._window.allows(mono):
            self._held.add(HeldReason.RATE_LIMIT)
            return False
        return True

    def _send(self, batch: Batch, now: float) -> Outcome:
        self._not_sending.clear()
        try:
            # counted when the request goes out, not when the pump decided to send: coalescing and
            # rendering take time, and a stamp from before them frees the window early (19 in 60 s)
            self._window.record(self._mono())
            return self.receiver.deliver(batch, now)
        finally:
            self._not_sending.set()

    # ------------------------------------------------------------ outcomes
    def _handle(self, outbox: Outbox, batch: Batch, outcome: Outcome, now: float, mono: float) -> bool:
        seqs = batch.seqs
        kind = outcome.kind
        if kind == OutcomeKind.DELIVERED:
            self._delivered(outbox, batch, now)
            return False
        self._update_health(
            outbox, last_error=outcome.reason, last_error_at=now, last_error_class=kind.value, failed=self._h(outbox).failed + 1
        )
        if kind == OutcomeKind.RETRY:
            delay = self._backoff.next_delay()
            if outcome.not_before is not None and outcome.not_before <= now:
                delay = 0.0
            elif outcome.not_before is not None:
                delay = outcome.not_before - now
            self._retry_until = mono + delay
            self._held.add(HeldReason.UNAVAILABLE)
            outbox.defer(self.receiver_name, seqs, now + delay)
            log.warning("%s: send failed, retrying in %.0fs: %s", self.receiver_name, delay, outcome.reason)
            return delay == 0.0
        if kind == OutcomeKind.LOCKED_OUT:
            self._lock_out(outbox, seqs, outcome, now, mono)
            return False
        if kind == OutcomeKind.BROKEN:
            self._broken(outbox, outcome, mono)
            return False
        return self._payload_fault(outbox, batch, outcome)

    def _delivered(self, outbox: Outbox, batch: Batch, now: float) -> None:
        outbox.complete(self.receiver_name, batch.seqs)
        if self._probe_at is not None:
            log.info("%s: delivering again", self.receiver_name)
        self._probe_at = None
        self._backoff.reset()
        self._held.clear()
        self._reduced_next = False
        self._budget = self.delivery.body_budget
        self._dropped = self._cancelled = self._cancelled_events = 0
        self._update_health(
            outbox, last_success=now, broken=False, locked_until=None, sent=self._h(outbox).sent + len(batch.seqs)
        )
        if outbox.queued_count(self.receiver_name) == 0:
            self._idle = True

    def _lock_out(self, outbox: Outbox, seqs: Sequence[int], outcome: Outcome, now: float, mono: float) -> None:
        lockout = self.delivery.lockout + self._backoff.jitter(min(60.0, self.delivery.lockout * 0.1))
        until = outcome.not_before if outcome.not_before is not None else now + lockout
        self._locked_until = mono + (until - now)
        self._held.add(HeldReason.LOCKOUT)
        outbox.defer(self.receiver_name, seqs, until)
        self._update_health(outbox, locked_until=until)
        log.warning("%s: rate limited, no sends for %.0fs: %s", self.receiver_name, until - now, outcome.reason)

    def _broken(self, outbox: Outbox, outcome: Outcome, mono: float) -> None:
        health = self._h(outbox)
        if not health.broken or health.last_error != outcome.reason or self._probe_at is None:
            log.error("%s: not sending until fixed (events stay queued): %s", self.receiver_name, outcome.reason)
        self._probe_at = mono + self.delivery.reprobe_interval
        self._update_health(outbox, broken=True)

    def _payload_fault(self, outbox: Outbox, batch: Batch, outcome: Outcome) -> bool:
        if outcome.kind == OutcomeKind.REJECTED and not batch.reduced:
            self._reduced_next = True
            log.warning("%s: message rejected, trying once without links: %s", self.receiver_name, outcome.reason)
            return True
        if outcome.kind == OutcomeKind.TOO_LARGE and batch.budget > MIN_BUDGET:
            self._budget = max(MIN_BUDGET, batch.budget // 2)
            log.warning("%s: message too large, resending within %d bytes", self.receiver_name, self._budget)
            return True
        outbox.drop(self.receiver_name, batch.seqs, outcome.reason)
        self._reduced_next = False
        self._budget = self.delivery.body_budget
        self._update_health(outbox, dropped=self._h(outbox).dropped + len(batch.seqs))
        log.error("%s: dropped %d events the receiver refused: %s", self.receiver_name, len(batch.seqs), outcome.reason)
        return False

    # ------------------------------------------------------------ health
    def _h(self, outbox: Outbox) -> ReceiverHealth:
        if self._health is None:
            self._health = outbox.health(self.receiver_name)
        return self._health

    def _update_health(self, outbox: Outbox, **changes: object) -> None:
        self._health = dataclasses.replace(self._h(outbox), **changes)  # type: ignore[arg-type]
        outbox.set_health(self._health)

    def _restore(self, outbox: Outbox, now: float, mono: float) -> None:
        """Once: a lockout recorded before a restart still holds (a robot locked out is locked out)."""
        if self._health is not None:
            return
        health = self._h(outbox)
        if health.locked_until is not None and health.locked_until > now:
            self._locked_until = mono + (health.locked_until - now)
            self._held.add(HeldReason.LOCKOUT)
