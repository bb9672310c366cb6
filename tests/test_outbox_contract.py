"""The outbox contract (monagent.notify.base.Outbox), held by the real store (read through
monagent.alerting.outbox.EventOutbox, as the agent reads it) and by the test outbox in tests/outboxes.py
alike: the notifier tests run against the fake, so the fake must behave as the store does, or those
tests prove nothing about the agent."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterator, List

import events_factory
import pytest
from outboxes import MemoryOutbox, queue

from monagent.alerting.outbox import EventOutbox
from monagent.events import Event
from monagent.notify.base import ReceiverHealth
from monagent.store import Store


def event(n: int) -> Event:
    return events_factory.event(
        subject=f"/m{n}", incident=f"inc-{n}", time=1000.0 + n, summary=f"event {n} 磁盘", value=90.0 + n, unit="%"
    )


class StoreOutbox(EventOutbox):
    """The real store as the agent's delivery reads it, filled the way the alert pipeline fills it."""

    def __init__(self, directory: Path) -> None:
        super().__init__(Store.open(directory))

    def add(self, receiver: str, *events: Event) -> None:
        queue(self.store, receiver, *events, now=1000.0)

    def close(self) -> None:
        self.store.close()


@pytest.fixture(params=["store", "memory"])
def outbox(request, tmp_path: Path) -> Iterator[Any]:
    makers: dict = {"store": lambda: StoreOutbox(tmp_path / "state"), "memory": MemoryOutbox}
    box = makers[request.param]()
    yield box
    close: Callable[[], None] = getattr(box, "close", lambda: None)
    close()


def ids(entries) -> List[str]:
    return [e.event.id for e in entries]


def test_pending_returns_queued_entries_oldest_first_per_receiver_with_the_event_intact(outbox) -> None:
    outbox.add("ops", event(1), event(2))
    outbox.add("dev", event(3))
    outbox.add("ops", event(4))
    entries = outbox.pending("ops", 2000.0)
    assert ids(entries) == ["inc-1:1", "inc-2:1", "inc-4:1"]
    assert [e.seq for e in entries] == sorted(e.seq for e in entries)
    assert entries[0].event == event(1)
    assert entries[0].attempts == 0
    assert outbox.queued_count("ops") == 3 and outbox.queued_count("dev") == 1
    assert ids(outbox.pending("ops", 2000.0, limit=2)) == ["inc-1:1", "inc-2:1"]


def test_complete_removes_only_the_given_entries_of_that_receiver(outbox) -> None:
    outbox.add("ops", event(1), event(2))
    outbox.add("dev", event(3))
    first, _second = outbox.pending("ops", 2000.0)
    outbox.complete("ops", [first.seq])
    assert ids(outbox.pending("ops", 2000.0)) == ["inc-2:1"]
    assert outbox.queued_count("dev") == 1


def test_defer_hides_an_entry_until_not_before_and_counts_the_attempt(outbox) -> None:
    outbox.add("ops", event(1), event(2))
    first, _ = outbox.pending("ops", 2000.0)
    outbox.defer("ops", [first.seq], 2500.0)
    assert ids(outbox.pending("ops", 2499.0)) == ["inc-2:1"]
    again = outbox.pending("ops", 2500.0)
    assert ids(again) == ["inc-1:1", "inc-2:1"]
    assert again[0].attempts == 1 and again[0].not_before == 2500.0
    assert outbox.queued_count("ops") == 2


def test_next_not_before_is_the_earliest_deferred_entry_still_waiting(outbox) -> None:
    outbox.add("ops", event(1), event(2), event(3))
    first, second, _third = outbox.pending("ops", 2000.0)
    assert outbox.next_not_before("ops", 2000.0) is None  # nothing deferred
    outbox.defer("ops", [first.seq], 2600.0)
    outbox.defer("ops", [second.seq], 2500.0)
    assert outbox.next_not_before("ops", 2000.0) == 2500.0
    assert outbox.next_not_before("ops", 2500.0) == 2600.0  # due ones are pending, not waiting
    assert outbox.next_not_before("dev", 2000.0) is None


def test_drop_removes_and_the_count_is_taken_once(outbox) -> None:
    outbox.add("ops", event(1), event(2), event(3))
    entries = outbox.pending("ops", 2000.0)
    outbox.drop("ops", [entries[0].seq, entries[1].seq], "rejected by the receiver")
    assert ids(outbox.pending("ops", 2000.0)) == ["inc-3:1"]
    assert outbox.take_dropped_count("ops") == 2
    assert outbox.take_dropped_count("ops") == 0
    assert outbox.take_dropped_count("dev") == 0


def test_receiver_health_is_stored_per_receiver(outbox) -> None:
    assert outbox.health("ops").receiver == "ops"
    health = ReceiverHealth("ops", last_success=1500.0)
    outbox.set_health(health)
    assert outbox.health("ops").last_success == 1500.0
    assert outbox.health("dev").last_success != 1500.0
