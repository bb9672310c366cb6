"""The store's outbox rows read as events (monagent.alerting.outbox.EventOutbox): entries held in memory
are marked not durable, and a row that cannot be read is logged once, left in place and never stops the
delivery of the others. The contract every outbox keeps is in tests/test_outbox_contract.py."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path
from typing import Iterator

import pytest
from dingtalk_helpers import parse_robot
from events_factory import T0, event
from fake_dingtalk import FakeDingTalk
from harness import FakeClock
from outboxes import queue

from monagent.alerting.codec import event_to_json
from monagent.alerting.outbox import NOT_DURABLE, EventOutbox
from monagent.alerting.persist import outbox_row
from monagent.notify.console import ConsoleDispatcher, ConsoleReceiver
from monagent.notify.dingtalk import DingTalkReceiver
from monagent.notify.dispatcher import ChatDispatcher
from monagent.store import Changes, Store

SECRET = "SECoutbox0123456789abcdef"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store.open(tmp_path / "state")
    yield store
    store.close()


def unreadable_rows(receiver: str) -> Changes:
    """A damaged row, and one written by a newer monagent in a format this one does not know."""
    newer = json.loads(event_to_json(event(incident="new", subject="/new")))
    newer.update(format=99, kind="tremor")
    return Changes(outbox=[(receiver, '{"id": "cut off', T0), (receiver, json.dumps(newer), T0)])


def test_an_event_comes_back_from_the_store_as_it_was_queued(store: Store) -> None:
    queued = event(summary="磁盘 /var 93%", facts={"mount": "/var"}, trend=(80.0, 93.0))
    queue(store, "ops", queued, now=T0)
    (entry,) = EventOutbox(store).pending("ops", T0)
    assert (entry.receiver, entry.event, entry.attempts, entry.not_before) == ("ops", queued, 0, 0.0)


def test_an_entry_held_in_memory_is_read_with_the_note_that_it_is_not_durable(store: Store) -> None:
    store.hold_volatile(*outbox_row("console", event(incident="a")))
    store.hold_volatile(*outbox_row("console", event(incident="b", note="first of 3")))
    first, second = EventOutbox(store).pending("console", T0)
    assert (first.event.note, second.event.note) == (NOT_DURABLE, f"first of 3; {NOT_DURABLE}")
    assert NOT_DURABLE == "not durable: the state directory cannot be written"
    assert first.seq < 0 and first.event.id == "a:1"


def test_an_unreadable_row_is_logged_once_by_seq_left_in_the_store_and_the_others_are_delivered(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    queue(store, "console", event(incident="before"), now=T0)
    store.commit(unreadable_rows("console"), T0)
    queue(store, "console", event(incident="after", subject="/srv"), now=T0)
    damaged, newer = [row.seq for row in store.pending_rows("console", T0)][1:3]
    outbox, out = EventOutbox(store), io.StringIO()
    caplog.set_level(logging.ERROR, logger="monagent.alerting.outbox")

    ConsoleDispatcher(ConsoleReceiver(stream=out)).pump(outbox, T0 + 1)
    ConsoleDispatcher(ConsoleReceiver(stream=out)).pump(outbox, T0 + 2)

    assert [line.split()[:6] for line in out.getvalue().splitlines()] == [
        ["FIRING", "critical", "web01", "disk", "/var", "used_percent"],
        ["FIRING", "critical", "web01", "disk", "/srv", "used_percent"],
    ]
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 2, errors  # once each, not at every pump
    assert errors[0].startswith(f"outbox entry {damaged} of receiver console cannot be read (JSONDecodeError: ")
    assert errors[1].startswith(f"outbox entry {newer} of receiver console cannot be read (ValueError: 'tremor' ")
    assert errors[1].endswith(f"it stays in {store.path}, undelivered")
    assert [row.seq for row in store.pending_rows("console", T0)] == [damaged, newer]  # nothing is lost
    assert store.queued_count("console") == 2  # monagent status still counts them
    assert outbox.queued_count("console") == 0  # delivery has nothing it can do with them


def test_a_chat_dispatcher_with_only_unreadable_rows_left_goes_idle_instead_of_polling(store: Store) -> None:
    """An unreadable row must not count as work in hand: a dispatcher that thinks entries remain asks
    to be pumped again at once, and its delivery thread would poll the database 20 times a second."""
    clock = FakeClock(wall=T0)
    store.commit(unreadable_rows("dingtalk:ops"), T0)
    queue(store, "dingtalk:ops", event(), now=T0)
    outbox = EventOutbox(store)
    with FakeDingTalk(clock.time) as fake:
        fake.add_robot("tok", secret=SECRET)
        config = parse_robot({"webhook": fake.webhook("tok"), "secret": SECRET, "group_wait": "0", "timezone": "UTC"})
        receiver = DingTalkReceiver(config)
        try:
            dispatcher = ChatDispatcher(receiver, config.delivery, monotonic=clock.monotonic)
            dispatcher.pump(outbox, clock.time())
            assert len(fake.accepted) == 1
            dispatcher.pump(outbox, clock.time())
            assert dispatcher.next_due(clock.time()) is None
        finally:
            receiver.close()
    assert store.queued_count("dingtalk:ops") == 2


def test_an_unreadable_row_that_has_gone_no_longer_lowers_the_count(store: Store, caplog: pytest.LogCaptureFixture) -> None:
    """Seqs once unreadable are not subtracted for ever: a row gone from the store (the age bound,
    or a newer monagent that delivered it) no longer lowers the count."""
    store.commit(unreadable_rows("ops"), T0)
    outbox = EventOutbox(store)
    assert outbox.pending("ops", T0) == [] and outbox.queued_count("ops") == 0
    store.drop("ops", [row.seq for row in store.pending_rows("ops", T0)], "test")
    queue(store, "ops", event(), now=T0)
    assert [e.event.id for e in outbox.pending("ops", T0)] == ["inc-1:1"]
    assert outbox.queued_count("ops") == 1
